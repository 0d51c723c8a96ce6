"""The canonical five-venue market simulator and vectorised episodes (SIMULATION.md §2–§5, §11)."""
