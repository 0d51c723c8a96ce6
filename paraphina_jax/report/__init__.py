"""Reports of `paraphina-jax run`: stdout contract, result tables, output files and plots."""
