"""Streaming generation from a base model or base + adapter.

A `Generator` keeps one base model in memory; adapters of that base are
swapped in by replacing only the LoRA weights (or the LoRA layers, when their
shape differs), never by reloading the base from disk.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lora_tui.core.adapters.layout import ADAPTER_WEIGHTS
from lora_tui.core.adapters.registry import is_adapter_dir, read_adapter_config, refuse_other_base
from lora_tui.core.adapters.weights import load_adapter_weights, remove_adapter_layers
from lora_tui.core.data.rendering import template_thinks
from lora_tui.core.errors import UserError
from lora_tui.core.models.store import expand_for_cpu, load_model


@dataclass(frozen=True)
class Sampling:
    """Defaults from the data-prep guide this product follows."""

    temperature: float = 0.3
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    thinking: bool = False  # a template with a thinking switch (Qwen3): think before answering

    def check(self) -> Sampling:
        problems = [
            (not 0 <= self.temperature <= 5, "temperature must be between 0 and 5"),
            (not 0 < self.top_p <= 1, "top-p must be above 0 and at most 1"),
            (self.top_k < 0, "top-k must be 0 (off) or more"),
            (not 0 <= self.min_p < 1, "min-p must be between 0 and 1"),
            (not 0.5 <= self.repetition_penalty <= 2, "repetition penalty must be between 0.5 and 2"),
            (self.max_tokens < 1, "max tokens must be at least 1"),
        ]
        for failed, message in problems:
            if failed:
                raise UserError(message + ".")
        return self


PLAIN_COMPLETION_NOTE = "no chat template: plain completion, the model continues the text as written"


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    time_to_first_token: float = 0.0
    tokens_per_second: float = 0.0
    finish_reason: str = ""  # "stop", "length" or "cancelled"
    plain_completion: bool = False  # the model has no chat template: it continued the text as written


@dataclass
class Turn:
    role: str
    content: str


class Generator:
    def __init__(self, model_path: Path, model_name: str = "") -> None:
        self.model_path = Path(model_path)
        self.model_name = model_name or self.model_path.name
        self.model, self.tokenizer = load_model(self.model_path)
        expand_for_cpu(self.model)
        self.adapter: Path | None = None
        self._lora_config: dict | None = None
        config = getattr(self.model, "args", None)
        self.context_length = getattr(config, "max_position_embeddings", None) or 4096
        self.vocab_size = getattr(config, "vocab_size", None) or len(self.tokenizer.get_vocab())

    # Adapters ----------------------------------------------------------------------

    def use_adapter(self, adapter_dir: Path | None) -> float:
        """Switch to `adapter_dir` (None for the base model); return seconds taken."""
        import mlx.core as mx

        started = time.perf_counter()
        if adapter_dir is None:
            remove_adapter_layers(self.model)
            self.adapter, self._lora_config = None, None
            return time.perf_counter() - started
        adapter_dir = Path(adapter_dir)
        if not is_adapter_dir(adapter_dir):
            raise UserError(f"{adapter_dir}: not an adapter folder.")
        refuse_other_base(adapter_dir, self.model_path, self.model_name)
        config = read_adapter_config(adapter_dir)
        layout = {k: config.get(k) for k in ("fine_tune_type", "num_layers", "lora_parameters")}
        if layout == self._lora_config:
            try:
                self.model.load_weights(str(adapter_dir / ADAPTER_WEIGHTS), strict=False)
            except (ValueError, RuntimeError, OSError) as exc:
                raise UserError(f"{adapter_dir / ADAPTER_WEIGHTS}: cannot load it ({exc}).") from None
        else:
            remove_adapter_layers(self.model)
            load_adapter_weights(self.model, adapter_dir)
            self._lora_config = layout
        self.model.eval()
        mx.eval(self.model.parameters())
        self.adapter = adapter_dir
        return time.perf_counter() - started

    # Generation -------------------------------------------------------------------

    def prompt_tokens(self, history: list[Turn], system: str | None = None, thinking: bool = False) -> list[int]:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": t.role, "content": t.content} for t in history
        ]
        if getattr(self.tokenizer, "chat_template", None):
            switch = {"enable_thinking": thinking} if template_thinks(self.tokenizer) else {}
            tokens = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False, **switch
            )
        else:
            tokens = self.tokenizer.encode("\n\n".join(m["content"] for m in messages))
        tokens = list(tokens)
        if len(tokens) >= self.context_length:
            raise UserError(f"The prompt is {len(tokens)} tokens; the model's context is {self.context_length}.")
        return tokens

    def stream(
        self,
        history: list[Turn],
        sampling: Sampling = Sampling(),
        system: str | None = None,
        stop: threading.Event | None = None,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        """Yield text pieces as tokens are generated; fill `stats` as it goes."""
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        sampling.check()
        stats = stats if stats is not None else GenerationStats()
        tokens = self.prompt_tokens(history, system, sampling.thinking)
        stats.prompt_tokens = len(tokens)
        stats.plain_completion = not getattr(self.tokenizer, "chat_template", None)
        if sampling.seed is not None:
            mx.random.seed(sampling.seed)
        sampler = make_sampler(sampling.temperature, sampling.top_p, sampling.min_p, top_k=sampling.top_k)
        processors = make_logits_processors(
            repetition_penalty=sampling.repetition_penalty if sampling.repetition_penalty != 1.0 else None
        )
        max_tokens = min(sampling.max_tokens, self.context_length - len(tokens))
        started = time.perf_counter()
        first = None
        stream = mx.new_stream(mx.default_device())
        responses = stream_generate(
            self.model,
            self.tokenizer,
            tokens,
            max_tokens=max_tokens,
            sampler=sampler,
            logits_processors=processors,
            stream=stream,
        )
        try:
            for response in responses:
                now = time.perf_counter()
                if first is None:
                    first = now
                    stats.time_to_first_token = now - started
                stats.generated_tokens = response.generation_tokens
                if response.generation_tokens > 1:
                    stats.tokens_per_second = (response.generation_tokens - 1) / (now - first)
                stats.finish_reason = response.finish_reason or ""
                if response.text:
                    yield response.text
                if stop is not None and stop.is_set():
                    stats.finish_reason = "cancelled"
                    return
        finally:
            # mlx-lm evaluates the next token ahead (async_eval); let it land before this thread moves on,
            # or a process exiting right after a stop aborts inside MLX.
            responses.close()
            mx.synchronize(stream)


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: int
    ended: bool  # stopped on its own (end of turn), not cut at max_tokens


def greedy_batch(model, tokenizer, prompts: list[list[int]], max_tokens: int) -> list[Answer]:
    """Greedy answers to token prompts, generated together in one batch (mlx-lm's batched generation)."""
    from mlx_lm import batch_generate

    if not prompts:
        return []
    response = batch_generate(model, tokenizer, prompts, max_tokens=max_tokens, return_token_ids=True)
    # batch_generate leaves out the stop token: an answer shorter than max_tokens ended on its own
    return [
        Answer(text, len(ids), len(ids) < max_tokens)
        for text, ids in zip(response.texts, response.token_ids, strict=True)
    ]


@dataclass(frozen=True)
class Sampled:
    tokens: list[int]  # the answer's tokens, with the stop token when it ended on its own
    text: str  # without the stop token
    ended: bool


def sample_batch(model, tokenizer, prompts: list[list[int]], max_tokens: int, temperature: float) -> list[Sampled]:
    """Sampled answers to token prompts, generated together through the KV cache (mlx-lm's BatchGenerator).

    Unlike batch_generate it keeps the token an answer stopped on: training on it teaches the model to stop.
    """
    from mlx_lm.generate import BatchGenerator
    from mlx_lm.sample_utils import make_sampler

    if not prompts:
        return []
    with cache_grows_by(max(len(prompt) for prompt in prompts) + max_tokens):
        return _sample(BatchGenerator, make_sampler, model, tokenizer, prompts, max_tokens, temperature)


@contextlib.contextmanager
def cache_grows_by(positions: int):
    """mlx-lm's batched KV cache grows 256 positions at a time; answers as short as GRPO's need far fewer,
    and in float32 (a CPU) the unused rest was most of a step's peak memory. Only allocation changes."""
    from mlx_lm.models.cache import BatchKVCache

    saved = BatchKVCache.step
    BatchKVCache.step = min(saved, -(-positions // 32) * 32)
    try:
        yield
    finally:
        BatchKVCache.step = saved


def _sample(BatchGenerator, make_sampler, model, tokenizer, prompts, max_tokens, temperature) -> list[Sampled]:
    generator = BatchGenerator(
        model,
        stop_tokens=[[token] for token in tokenizer.eos_token_ids],
        sampler=make_sampler(temp=temperature),
        completion_batch_size=len(prompts),
        prefill_batch_size=len(prompts),
    )
    uids = generator.insert(prompts, [max_tokens] * len(prompts))
    tokens: dict[int, list[int]] = {uid: [] for uid in uids}
    ended: dict[int, bool] = {}
    try:
        while responses := generator.next_generated():
            for response in responses:
                tokens[response.uid].append(response.token)
                if response.finish_reason is not None:
                    ended[response.uid] = response.finish_reason == "stop"
    finally:
        generator.close()
    results = []
    for uid in uids:
        stopped = ended.get(uid, False)
        text_tokens = tokens[uid][:-1] if stopped else tokens[uid]
        results.append(Sampled(tokens[uid], tokenizer.decode(text_tokens), stopped))
    return results
