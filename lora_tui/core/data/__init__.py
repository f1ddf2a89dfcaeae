"""Datasets: read and detect formats, check, lint, split, count tokens, redact PII, turn documents into records."""
