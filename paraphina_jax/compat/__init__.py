"""The original engine's harnesses as parameterisations of the shared strategy pieces
(SIMULATION.md §1–§3, §9–§10, §13): dummy book, tick jitter, H1/H2 schedules and fill models,
and their output formats."""
