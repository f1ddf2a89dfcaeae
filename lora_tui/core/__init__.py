"""The engine. Nothing here imports Textual (tests/test_layout.py enforces it)."""
