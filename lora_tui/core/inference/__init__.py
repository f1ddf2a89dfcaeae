"""Inference: streaming generation from a base model, with or without an adapter."""
