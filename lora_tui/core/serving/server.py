"""The server as a whole: a socket bound before the model loads, the engine, and uvicorn serving the API."""

from __future__ import annotations

import errno
import getpass
import ipaddress
import socket
import threading
import time
from collections.abc import Callable

from lora_tui.core.errors import UserError
from lora_tui.core.inference.generate import Generator
from lora_tui.core.serving.engine import Engine, Served
from lora_tui.core.serving.http import make_api
from lora_tui.core.serving.openai_api import ServedModels
from lora_tui.core.serving.plan import ServePlan

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, not yet listening; a port in use is one sentence, before any model loads."""
    if not 0 <= port <= 65535:
        raise UserError(f"Port {port} is not a port: use 1-65535 (or 0 for any free one).")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise UserError(f"{host}: not an address or host name this machine knows.") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise UserError(_bind_problem(error, host, port)) from None
    return sock


def _bind_problem(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"Port {port} on {host} is in use (another server?); choose another with --port."
    if error.errno == errno.EACCES:
        return f"Port {port} needs administrator rights; choose one above 1023 with --port."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its own."
    return f"Cannot listen on {host}:{port}: {error.strerror or error}."


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Service:
    """The engine and its HTTP server on one bound socket: `run` in the foreground, or `start`/`stop` on a thread."""

    def __init__(
        self,
        plan: ServePlan,
        generator: Generator,
        sock: socket.socket,
        api_key: str | None = None,
        on_served: Callable[[Served], None] = lambda served: None,
    ) -> None:
        import uvicorn

        self.plan = plan
        self.engine = Engine(generator, plan.adapters, base_name=plan.base_name, on_served=on_served)
        served = ServedModels(
            plan.base_name, tuple(plan.adapters), generator.tokenizer, generator.context_length, generator.vocab_size
        )
        config = uvicorn.Config(
            make_api(self.engine, served, api_key),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._socket = sock
        self._thread: threading.Thread | None = None
        self.host, self.port = sock.getsockname()[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def requests_served(self) -> int:
        return self.engine.requests_served

    def listen(self) -> None:
        """Accept connections from now on (they wait in the backlog until the server takes them)."""
        self._socket.listen(1024)

    def run(self) -> None:
        """Serve until Ctrl-C or SIGTERM (uvicorn's own handlers), then close the engine."""
        self.listen()
        self.engine.start()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self.engine.close()
            self._socket.close()

    def start(self, timeout: float = 30.0) -> Service:
        self._thread = threading.Thread(target=self.run, name="lora-tui-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UserError(f"The server on {self.url} did not start.")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


def serve_in_background(plan: ServePlan, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Service:
    """Load the plan's base and serve it on a thread: on `port`, or on any free port when that one is taken."""
    try:
        sock = bind(host, port)
    except UserError:
        sock = bind(host, 0)
    return Service(plan, Generator(plan.model_path, plan.model_name), sock).start()


def startup_lines(service: Service, api_key: str | None) -> list[str]:
    plan = service.plan
    adapters = f" and {len(plan.adapters)} adapter{'s' * (len(plan.adapters) != 1)} ({', '.join(plan.adapters)})"
    lines = [f"Serving {plan.base_name}{adapters if plan.adapters else ''} at {service.url}"]
    target = "127.0.0.1" if service.host in ("0.0.0.0", "::") else service.host
    lines.append(
        f"From your laptop: ssh -N -L {service.port}:{target}:{service.port} {getpass.getuser()}@{socket.gethostname()}"
        f" (then http://127.0.0.1:{service.port}/v1 there)"
    )
    if api_key:
        lines.append("Every request needs the API key (Authorization: Bearer KEY).")
    elif not is_loopback(service.host):
        lines.append(
            f"warning: listening on {service.host} with no API key: anyone who reaches this machine can use the "
            "models. Pass --api-key KEY (or set LORA_TUI_API_KEY)."
        )
    lines.append("Ctrl-C stops it.")
    return lines


def served_line(served: Served) -> str:
    return (
        f"{served.model}: {served.prompt_tokens} prompt + {served.completion_tokens} tokens, first token "
        f"{served.seconds_to_first_token:.2f} s, {served.tokens_per_second:.1f} tok/s ({served.finish_reason})"
    )
