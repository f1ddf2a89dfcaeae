"""Talking to an OpenAI-style server as any client does: a streamed chat answer over HTTP.

Chat uses it for the models lora-tui's own server serves, so a conversation there goes
through the server (its batch, its loaded model) like a request from any other app.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import GenerationStats, Sampling


def stream_chat(
    url: str,
    model: str,
    messages: list[dict],
    sampling: Sampling,
    stop: threading.Event | None = None,
    stats: GenerationStats | None = None,
    api_key: str | None = None,
) -> Iterator[str]:
    """Yield the answer's pieces as the server sends them; fill `stats` from the stream and its usage."""
    import httpx

    stats = stats if stats is not None else GenerationStats()
    body = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        **({"seed": sampling.seed} if sampling.seed is not None else {}),
    }
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    started = time.perf_counter()
    first = None
    try:
        with httpx.stream("POST", f"{url}/chat/completions", json=body, headers=headers, timeout=None) as response:
            if response.status_code != 200:
                response.read()
                raise UserError(f"{url}: {_error_message(response)}")
            for chunk in _chunks(response):
                if chunk.get("usage"):
                    stats.prompt_tokens = chunk["usage"]["prompt_tokens"]
                    stats.generated_tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk.get("choices") or []:
                    stats.finish_reason = choice.get("finish_reason") or stats.finish_reason
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        now = time.perf_counter()
                        if first is None:
                            first, stats.time_to_first_token = now, now - started
                        stats.generated_tokens += 1
                        yield text
                if stop is not None and stop.is_set():
                    stats.finish_reason = "cancelled"
                    return  # leaving the stream closes the connection: the server stops generating
    except httpx.HTTPError as error:
        raise UserError(f"{url}: the server did not answer ({error}).") from None
    finally:
        if first is not None and stats.generated_tokens > 1:
            stats.tokens_per_second = (stats.generated_tokens - 1) / max(time.perf_counter() - first, 1e-9)


def _chunks(response) -> Iterator[dict]:
    for line in response.iter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if "error" in chunk:
            raise UserError(chunk["error"].get("message", "the server failed"))
        yield chunk


def _error_message(response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
