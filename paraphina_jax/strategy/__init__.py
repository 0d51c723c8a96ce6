"""The Paraphina strategy as pure JAX functions (STRATEGY.md §5–§17), one module per concept."""
