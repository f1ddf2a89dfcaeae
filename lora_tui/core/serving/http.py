"""The HTTP face of the engine: Starlette routes in OpenAI's shapes, with an optional API key."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lora_tui.core.serving import openai_api as api
from lora_tui.core.serving.engine import Engine, Event, Failed, Finished, Piece

API_KEY_VARIABLE = "LORA_TUI_API_KEY"


def make_api(engine: Engine, served: api.ServedModels, api_key: str | None = None) -> Starlette:
    started = int(time.time())

    async def list_models(request: HTTPRequest) -> Response:
        return JSONResponse(served.listing(started))

    async def one_model(request: HTTPRequest) -> Response:
        return JSONResponse(served.describe(request.path_params["name"], started))

    async def chat_completions(request: HTTPRequest) -> Response:
        parsed = api.read_chat_request(await _json_body(request), served)
        if parsed.stream:
            return _event_stream(_chat_stream(engine, parsed))
        return await _whole_answer(request, engine, parsed, api.chat_response)

    async def completions(request: HTTPRequest) -> Response:
        parsed = api.read_text_request(await _json_body(request), served)
        if parsed.stream:
            return _event_stream(_text_stream(engine, parsed))
        return await _whole_answer(request, engine, parsed, api.text_response)

    async def health(request: HTTPRequest) -> Response:
        return JSONResponse({"status": "ok", "requests_served": engine.requests_served})

    routes = [
        Route("/v1/models", list_models),
        Route("/v1/models/{name:path}", one_model),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/health", health),
    ]
    handlers = {api.RequestProblem: _problem_response, HTTPException: _http_problem}
    middleware = [Middleware(RequireKey, api_key=api_key)] if api_key else []
    return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)


class RequireKey:
    """Every request must carry the key, as OpenAI's clients send it: `Authorization: Bearer KEY`."""

    def __init__(self, app, api_key: str) -> None:
        self.app, self.expected = app, api_key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self._carries_key(dict(scope["headers"])):
            problem = api.RequestProblem(401, "This server needs an API key: send Authorization: Bearer KEY.")
            await _problem_response(None, problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _carries_key(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.expected)


async def _json_body(request: HTTPRequest):
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise api.RequestProblem(400, f"The request body is not valid JSON ({problem}).") from None


def _problem_response(request, problem: api.RequestProblem) -> Response:
    return JSONResponse(problem.body(), status_code=problem.status)


def _http_problem(request, error: HTTPException) -> Response:
    message = {404: f"No such endpoint: {request.url.path}.", 405: f"{request.method} is not allowed here."}
    problem = api.RequestProblem(error.status_code, message.get(error.status_code, str(error.detail)))
    return _problem_response(request, problem)


# Generation -----------------------------------------------------------------------------


async def _events(engine: Engine, parsed: api.Request) -> AsyncIterator[Event]:
    """The engine's events for one request, as they come; leaving early (the client went away) cancels it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def deliver(event: Event) -> None:  # on the engine's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
            loop.call_soon_threadsafe(queue.put_nowait, event)

    job = engine.submit(parsed.completion, deliver)
    try:
        while True:
            event = await queue.get()
            yield event
            if isinstance(event, (Finished, Failed)):
                return
    finally:
        job.cancel()


async def _whole_answer(
    request: HTTPRequest, engine: Engine, parsed: api.Request, shape: Callable[[api.Request, str, Finished], dict]
) -> Response:
    async def collect() -> Response:
        pieces = []
        async with contextlib.aclosing(_events(engine, parsed)) as events:
            async for event in events:
                if isinstance(event, Piece):
                    pieces.append(event.text)
                elif isinstance(event, Failed):
                    raise api.RequestProblem(500, event.message)
                else:
                    return JSONResponse(shape(parsed, "".join(pieces), event))
        raise api.RequestProblem(500, "The generation ended without an answer.")

    answer = asyncio.ensure_future(collect())
    gone = asyncio.ensure_future(_disconnected(request))
    await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    if not answer.done():  # the client went away: cancelling the task cancels its generation
        answer.cancel()
        return Response(status_code=499)
    gone.cancel()
    return answer.result()


async def _disconnected(request: HTTPRequest) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _event_stream(chunks: AsyncIterator[dict | str]) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield f"data: {chunk if isinstance(chunk, str) else json.dumps(chunk, ensure_ascii=False)}\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _chat_stream(engine: Engine, parsed: api.Request) -> AsyncIterator[dict | str]:
    return _chunks(
        engine,
        parsed,
        opening=api.chat_chunk(parsed, {"role": "assistant", "content": ""}),
        piece=lambda text: api.chat_chunk(parsed, {"content": text}),
        ending=lambda finished: api.chat_chunk(parsed, {}, finished),
        kind="chat.completion.chunk",
    )


def _text_stream(engine: Engine, parsed: api.Request) -> AsyncIterator[dict | str]:
    return _chunks(
        engine,
        parsed,
        opening=None,
        piece=lambda text: api.text_chunk(parsed, text),
        ending=lambda finished: api.text_chunk(parsed, "", finished),
        kind="text_completion",
    )


async def _chunks(
    engine: Engine,
    parsed: api.Request,
    opening: dict | None,
    piece: Callable[[str], dict],
    ending: Callable[[Finished], dict],
    kind: str,
) -> AsyncIterator[dict | str]:
    """A streamed answer as OpenAI sends it: chunks, the finish reason, usage if asked, then [DONE]."""
    if opening is not None:
        yield opening
    async with contextlib.aclosing(_events(engine, parsed)) as events:
        async for event in events:
            if isinstance(event, Piece):
                yield piece(event.text)
            elif isinstance(event, Failed):
                yield api.RequestProblem(500, event.message).body()
                return
            else:
                yield ending(event)
                if parsed.include_usage:
                    yield api.usage_chunk(parsed, event, kind)
    yield "[DONE]"
