"""One loaded base model, its adapters, and one thread that generates for every request.

Requests for the same adapter are generated together in one continuous batch
(mlx-lm's BatchGenerator): a request that arrives while others stream joins the
batch at the next step. A request for another adapter waits until the batch has
drained, then the LoRA weights are swapped (milliseconds; the base stays loaded)
and its batch starts. Only this thread touches MLX, so callers on any thread or
event loop just `submit` and read the events they are handed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lora_tui.core.inference.generate import Generator
from lora_tui.core.serving.stops import StopText
from lora_tui.core.threads import mlx_worker_thread


@dataclass(frozen=True)
class Completion:
    """One request, resolved: the served model it names, its prompt tokens, how to sample, when to stop."""

    model: str
    prompt: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logit_bias: tuple[tuple[int, float], ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def logits_processors(self) -> list:
        from mlx_lm.sample_utils import make_logits_processors

        return make_logits_processors(
            logit_bias=dict(self.logit_bias) or None,
            presence_penalty=self.presence_penalty or None,
            frequency_penalty=self.frequency_penalty or None,
        )


@dataclass(frozen=True)
class Piece:
    text: str


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # "stop", "length" or "cancelled"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    message: str


Event = Piece | Finished | Failed


@dataclass
class Job:
    completion: Completion
    deliver: Callable[[Event], None]  # called on the engine's thread; must not block
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass
class _Running:
    """A job in the batch: its detokenizer, stop-string watch and counts."""

    job: Job
    detokenizer: object
    stops: StopText
    tokens: int = 0
    first_token_at: float | None = None


@dataclass(frozen=True)
class Served:
    """What one finished request measured (for the log line and the request counter)."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    seconds_to_first_token: float
    tokens_per_second: float
    finish_reason: str


class Engine:
    def __init__(
        self,
        generator: Generator,
        adapters: dict[str, Path],
        base_name: str = "",
        batch_size: int = 8,
        on_served: Callable[[Served], None] = lambda served: None,
    ) -> None:
        self.generator = generator
        self.base_name = base_name or generator.model_name
        self.adapters = dict(adapters)  # served name -> adapter folder
        self.batch_size = batch_size
        self.on_served = on_served
        self.requests_served = 0
        self.generating = 0  # requests in the batch now
        self._pending: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lora-tui-serve", daemon=True)

    @property
    def model_names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def start(self) -> Engine:
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._closed = True
            for job in self._pending:
                job.cancel()
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, completion: Completion, deliver: Callable[[Event], None]) -> Job:
        if completion.model not in self.model_names:
            raise KeyError(completion.model)
        job = Job(completion, deliver)
        with self._wake:
            self._pending.append(job)
            self._wake.notify()
        return job

    # The engine's thread -------------------------------------------------------------

    def _run(self) -> None:
        import mlx.core as mx

        with mlx_worker_thread():
            self._serve_until_closed(mx.new_stream(mx.default_device()))

    def _serve_until_closed(self, stream) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                name = self._pending[0].completion.model
            wanted = self.adapters.get(name)
            if self.generator.adapter != wanted:
                try:
                    self.generator.use_adapter(wanted)
                except Exception as error:
                    self._fail_waiting(name, f"cannot load {name}: {error}")
                    continue
            self._serve_batch(name, stream)

    def _serve_batch(self, name: str, stream) -> None:
        from mlx_lm.generate import BatchGenerator

        eos = sorted(self.generator.tokenizer.eos_token_ids)
        batch = BatchGenerator(
            self.generator.model,
            stop_tokens=[[token] for token in eos],
            completion_batch_size=self.batch_size,
            prefill_batch_size=self.batch_size,
            stream=stream,
        )
        running: dict[int, _Running] = {}
        try:
            while True:
                self._admit(name, batch, running)
                self.generating = len(running)
                if not running:
                    return
                for response in batch.next_generated():
                    self._advance(running, batch, response)
                self._drop_cancelled(running, batch)
        except Exception as error:  # a fault in MLX fails the requests in flight, not the server
            for state in running.values():
                state.job.deliver(Failed(f"generation failed: {error}"))
        finally:
            self.generating = 0
            batch.close()

    def _admit(self, name: str, batch, running: dict[int, _Running]) -> None:
        """Move waiting jobs for `name` into the batch, in order, stopping at the first for another model."""
        from mlx_lm.sample_utils import greedy_sampler

        while len(running) < self.batch_size:
            with self._wake:
                if self._closed or not self._pending or self._pending[0].completion.model != name:
                    return
                job = self._pending.popleft()
            if job.cancelled.is_set():
                continue
            request = job.completion
            sampler = greedy_sampler if request.temperature == 0 else _sampler(request)
            (uid,) = batch.insert(
                [request.prompt],
                max_tokens=[request.max_tokens],
                samplers=[sampler],
                logits_processors=[request.logits_processors()],
            )
            detokenizer = self.generator.tokenizer.detokenizer
            detokenizer.reset()
            running[uid] = _Running(job, detokenizer, StopText(request.stop))

    def _advance(self, running: dict[int, _Running], batch, response) -> None:
        state = running.get(response.uid)
        if state is None:
            return
        now = time.perf_counter()
        if state.first_token_at is None:
            state.first_token_at = now
        if response.finish_reason == "stop":  # the end-of-turn token: not part of the answer
            self._finish(running, response.uid, "stop", state.detokenizer, now)
            return
        state.tokens += 1
        state.detokenizer.add_token(response.token)
        text, stopped = state.stops.feed(state.detokenizer.last_segment)
        if text:
            state.job.deliver(Piece(text))
        if stopped:
            batch.remove([response.uid])
            self._finish(running, response.uid, "stop", None, now)
        elif response.finish_reason == "length":
            self._finish(running, response.uid, "length", state.detokenizer, now)

    def _drop_cancelled(self, running: dict[int, _Running], batch) -> None:
        """Stop what was cancelled (its client went away), and everything once the engine is closing."""
        for uid in [uid for uid, state in running.items() if state.job.cancelled.is_set() or self._closed]:
            batch.remove([uid])
            self._finish(running, uid, "cancelled", None, time.perf_counter())

    def _finish(self, running: dict[int, _Running], uid: int, reason: str, detokenizer, now: float) -> None:
        state = running.pop(uid)
        if detokenizer is not None:  # what the detokenizer and the stop watch still hold
            detokenizer.finalize()
            text, _ = state.stops.feed(detokenizer.last_segment)
            text += state.stops.rest()
            if text:
                state.job.deliver(Piece(text))
        prompt_tokens = len(state.job.completion.prompt)
        state.job.deliver(Finished(reason, prompt_tokens, state.tokens))
        self.requests_served += 1
        first = state.first_token_at or now
        self.on_served(
            Served(
                state.job.completion.model,
                prompt_tokens,
                state.tokens,
                first - state.job.submitted,
                (state.tokens - 1) / (now - first) if state.tokens > 1 and now > first else 0.0,
                reason,
            )
        )

    def _fail_waiting(self, name: str, message: str) -> None:
        """When `name` cannot be loaded, fail the jobs waiting for it so none waits forever."""
        with self._wake:
            failed = [job for job in self._pending if job.completion.model == name]
            self._pending = deque(job for job in self._pending if job.completion.model != name)
        for job in failed:
            job.deliver(Failed(message))


def _sampler(request: Completion):
    """Top-p then temperature sampling; with a seed, from the request's own random key, so a seeded
    request gives the same answer whatever else is in the batch."""
    import mlx.core as mx
    from mlx_lm.sample_utils import apply_top_p

    key = mx.random.key(request.seed) if request.seed is not None else None
    scale = 1 / request.temperature

    def sample(logprobs):
        nonlocal key
        if request.top_p < 1:
            logprobs = apply_top_p(logprobs, request.top_p)
        if key is None:
            return mx.random.categorical(logprobs * scale)
        key, subkey = mx.random.split(key)
        return mx.random.categorical(logprobs * scale, key=subkey)

    return sample
