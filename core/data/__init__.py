"""Bundled sample documents."""
