"""Models: find local models, load them, get the demo model, import GGUF files."""
