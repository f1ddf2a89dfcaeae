"""`lora-tui serve`: an OpenAI-compatible endpoint for a base model and its adapters."""

from __future__ import annotations

import contextlib
import os

from lora_tui.cli.output import Context, say
from lora_tui.core.inference.generate import Generator
from lora_tui.core.serving.http import API_KEY_VARIABLE
from lora_tui.core.serving.plan import plan_serving
from lora_tui.core.serving.server import DEFAULT_HOST, DEFAULT_PORT, Service, bind, served_line, startup_lines


def serve(args, context: Context) -> int:
    plan = plan_serving(
        context.locations.adapters_dir,
        context.locations.models_dir,
        context.extra_model_dirs(),
        args.model,
        args.adapter or [],
    )
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    sock = bind(args.host, args.port)
    say(f"Loading {plan.model_name} ...")
    generator = Generator(plan.model_path, plan.model_name)
    service = Service(plan, generator, sock, api_key, on_served=lambda served: say(served_line(served)))
    service.listen()
    for line in startup_lines(service, api_key):
        say(line)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn has already finished the requests in flight
        service.run()
    say("Stopped.")
    return 0


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "serve", help="serve a model and its adapters over HTTP, as OpenAI's API (/v1/chat/completions ...)"
    )
    parser.add_argument(
        "--model", help="base model (default: the base of the adapters named); alone, it serves all its adapters"
    )
    parser.add_argument(
        "--adapter",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="adapters to serve (default with --model: every adapter of that model)",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s: this Mac only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s; 0 picks a free one")
    parser.add_argument(
        "--api-key", metavar="KEY", help=f"every request must send it as a bearer token (or set {API_KEY_VARIABLE})"
    )
    parser.set_defaults(handler=serve)
