"""Shipped OEM configs; ``reference.toml`` is the embedded default."""
