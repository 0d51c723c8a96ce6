"""Statistics with the exact definitions of SIMULATION.md §9.3 / RESEARCH.md §2."""
