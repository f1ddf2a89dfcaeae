"""A whole answer from a Generator, for tests that compare texts."""

from lora_tui.core.inference.generate import GenerationStats, Sampling, Turn


def complete(
    generator, history: list[Turn], sampling: Sampling, system: str | None = None
) -> tuple[str, GenerationStats]:
    stats = GenerationStats()
    return "".join(generator.stream(history, sampling, system, stats=stats)), stats
