"""Built-in inference backends; each registers through the ``register_backends`` hook."""
