"""paraphina_jax: multi-venue perp market making in pure JAX with a NumPy reference engine."""

__version__ = "0.1.0"
