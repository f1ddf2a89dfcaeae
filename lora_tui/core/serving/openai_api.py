"""OpenAI's request and response shapes, read into `Completion`s and written from engine events.

Requests are checked field by field; a problem is a `RequestProblem` that the HTTP layer
answers in OpenAI's error shape, so the official client raises its usual exception.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from lora_tui.core.data.records import LineError, read_messages
from lora_tui.core.data.rendering import render_tokens
from lora_tui.core.errors import UserError
from lora_tui.core.serving.engine import Completion, Finished

MAX_STOP_STRINGS = 4  # as OpenAI allows


class RequestProblem(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = {401: "authentication_error", 404: "invalid_request_error"}.get(self.status, "invalid_request_error")
        if self.status >= 500:
            kind = "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Request:
    completion: Completion
    stream: bool
    include_usage: bool
    id: str
    created: int


@dataclass(frozen=True)
class ServedModels:
    """What the server offers: the base's name, the adapters' names, and how to count prompt tokens."""

    base: str
    adapters: tuple[str, ...]
    tokenizer: object
    context_length: int
    vocab_size: int

    @property
    def names(self) -> tuple[str, ...]:
        return (self.base, *self.adapters)

    def listing(self, created: int) -> dict:
        return {"object": "list", "data": [self.describe(name, created) for name in self.names]}

    def describe(self, name: str, created: int) -> dict:
        if name not in self.names:
            raise unknown_model(name, self.names)
        entry = {"id": name, "object": "model", "created": created, "owned_by": "lora-tui"}
        return entry if name == self.base else {**entry, "parent": self.base, "root": self.base}


def unknown_model(name: str, names: tuple[str, ...]) -> RequestProblem:
    return RequestProblem(
        404,
        f"The model {name!r} does not exist here; this server has {', '.join(names)}.",
        "model",
        "model_not_found",
    )


def read_chat_request(body, served: ServedModels) -> Request:
    body = _object(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestProblem(400, "'messages' must be a non-empty array of {role, content} objects.", "messages")
    try:
        conversation = list(read_messages([_system_for_developer(message) for message in raw]))
        prompt = render_tokens(served.tokenizer, conversation, add_generation_prompt=True)
    except LineError as problem:
        raise RequestProblem(400, f"messages: {problem}.", "messages") from None
    except UserError as problem:
        raise RequestProblem(400, str(problem), "messages") from None
    except Exception as problem:  # the model's own chat template refused the conversation (jinja raise_exception)
        raise RequestProblem(400, f"The model's chat template refused the messages: {problem}", "messages") from None
    return _request(body, served, prompt, "chatcmpl", ("max_completion_tokens", "max_tokens"))


def read_text_request(body, served: ServedModels) -> Request:
    body = _object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise RequestProblem(400, "'prompt' must be a non-empty string.", "prompt")
    tokens = list(served.tokenizer.encode(prompt))
    return _request(body, served, tokens, "cmpl", ("max_tokens",))


def _request(body: dict, served: ServedModels, prompt: list[int], prefix: str, max_keys: tuple[str, ...]) -> Request:
    model = body.get("model", served.base)
    if not isinstance(model, str):
        raise RequestProblem(400, "'model' must be a string.", "model")
    if model not in served.names:
        raise unknown_model(model, served.names)
    room = served.context_length - len(prompt)
    if room < 1:
        raise RequestProblem(
            400, f"The prompt is {len(prompt)} tokens; the model's context is {served.context_length}.", "messages"
        )
    if body.get("n", 1) != 1:
        raise RequestProblem(400, "'n' must be 1: one answer per request.", "n")
    max_key = next((key for key in max_keys if body.get(key) is not None), max_keys[-1])
    max_tokens = _number(body, max_key, int, minimum=1, default=room)
    completion = Completion(
        model=model,
        prompt=prompt,
        max_tokens=min(max_tokens, room),
        temperature=_number(body, "temperature", float, minimum=0, maximum=2, default=1.0),
        top_p=_number(body, "top_p", float, minimum=0, maximum=1, default=1.0, above_minimum=True),
        seed=_number(body, "seed", int, default=None),
        stop=_stop_strings(body.get("stop")),
        logit_bias=_logit_bias(body.get("logit_bias"), served.vocab_size),
        presence_penalty=_number(body, "presence_penalty", float, minimum=-2, maximum=2, default=0.0),
        frequency_penalty=_number(body, "frequency_penalty", float, minimum=-2, maximum=2, default=0.0),
    )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestProblem(400, "'stream' must be true or false.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestProblem(400, "'stream_options' must be an object.", "stream_options")
    return Request(
        completion,
        stream,
        bool(options.get("include_usage")),
        f"{prefix}-{uuid.uuid4().hex[:24]}",
        int(time.time()),
    )


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise RequestProblem(400, "The request body must be a JSON object.")
    return body


def _system_for_developer(message):
    """OpenAI's newer `developer` role is the system prompt under another name."""
    if isinstance(message, dict) and message.get("role") == "developer":
        return {**message, "role": "system"}
    return message


def _number(body: dict, key: str, kind, minimum=None, maximum=None, default=None, above_minimum: bool = False):
    value = body.get(key)
    if value is None:
        return default
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (kind is int and value != int(value)):
        raise RequestProblem(400, f"'{key}' must be {'a whole number' if kind is int else 'a number'}.", key)
    below = minimum is not None and (value <= minimum if above_minimum else value < minimum)
    if below or (maximum is not None and value > maximum):
        low = f"above {minimum}" if above_minimum else f"at least {minimum}"
        high = f" and at most {maximum}" if maximum is not None else ""
        raise RequestProblem(400, f"'{key}' must be {low}{high}; it is {value}.", key)
    return kind(value)


def _stop_strings(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > MAX_STOP_STRINGS:
        raise RequestProblem(400, f"'stop' must be a string or a list of at most {MAX_STOP_STRINGS} strings.", "stop")
    return tuple(s for s in stops if s)


def _logit_bias(bias, vocab_size: int) -> tuple[tuple[int, float], ...]:
    """OpenAI's {"token id": bias}, each bias in [-100, 100] (-100 bans the token)."""
    if bias is None:
        return ()
    if not isinstance(bias, dict):
        raise RequestProblem(400, "'logit_bias' must be an object of token ids to numbers.", "logit_bias")
    pairs = []
    for token, value in bias.items():
        if not str(token).isdigit() or int(token) >= vocab_size:
            raise RequestProblem(400, f"logit_bias: {token!r} is not a token id (0-{vocab_size - 1}).", "logit_bias")
        pairs.append((int(token), _number({"logit_bias": value}, "logit_bias", float, minimum=-100, maximum=100)))
    return tuple(pairs)


# Responses ---------------------------------------------------------------------------


def usage(finished: Finished) -> dict:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


def finish_reason(finished: Finished) -> str:
    return "length" if finished.finish_reason == "length" else "stop"


def chat_response(request: Request, text: str, finished: Finished) -> dict:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": finish_reason(finished),
    }
    return {**_head(request, "chat.completion"), "choices": [choice], "usage": usage(finished)}


def chat_chunk(request: Request, delta: dict, finished: Finished | None = None) -> dict:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finished and finish_reason(finished)}
    return {**_head(request, "chat.completion.chunk"), "choices": [choice]}


def text_response(request: Request, text: str, finished: Finished) -> dict:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason(finished)}
    return {**_head(request, "text_completion"), "choices": [choice], "usage": usage(finished)}


def text_chunk(request: Request, text: str, finished: Finished | None = None) -> dict:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finished and finish_reason(finished)}
    return {**_head(request, "text_completion"), "choices": [choice]}


def usage_chunk(request: Request, finished: Finished, kind: str) -> dict:
    return {**_head(request, kind), "choices": [], "usage": usage(finished)}


def _head(request: Request, kind: str) -> dict:
    return {"id": request.id, "object": kind, "created": request.created, "model": request.completion.model}
