"""Built-in skills; each registers through the ``register_skills`` hook."""
