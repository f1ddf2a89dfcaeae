"""Serving: an OpenAI-style HTTP endpoint for a base model and its adapters."""
