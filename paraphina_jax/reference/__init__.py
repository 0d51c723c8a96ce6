"""The float64 NumPy reference engine: the authority the JAX engine is parity-tested against.

Same module and function names as `paraphina_jax.strategy`, written plainly (loops where the spec
thinks in loops). It shares the config objects and state dataclasses with the JAX engine, not code.
"""
