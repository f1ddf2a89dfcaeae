"""lora-tui: fine-tune local language models with LoRA on Apple's MLX."""

__version__ = "0.1.0"
