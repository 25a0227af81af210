"""The cloud tier: OpenAI-compatible endpoints, their health, and what they cost."""
