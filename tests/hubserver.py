"""A stand-in for the Hugging Face hub's HTTP API, on 127.0.0.1, serving model folders.

What huggingface_hub asks when it downloads a snapshot (HF_ENDPOINT points it here):
- GET /api/models/ORG/NAME[/revision/REV]: the commit and its files;
- GET /api/models/ORG/NAME/tree/SHA?recursive=true: files with sizes;
- HEAD and GET /ORG/NAME/resolve/SHA/FILE, with X-Repo-Commit, ETag and Content-Length,
  and a Range request to resume.
`drop_next` makes the next N file transfers stop halfway, as a dropped connection does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos  # "org/name" -> folder
        self.drops_left, self.drop_only = 0, None
        self.range_starts: list[int] = []  # the byte offset of every resumed transfer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def drop_next(self, transfers: int, only: str | None = None) -> None:
        """The next `transfers` transfers (of the file named `only`, if given) stop halfway."""
        self.drops_left, self.drop_only = transfers, only

    def _files(self, repo: str) -> list[Path]:
        folder = self.repos[repo]
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _json(self, document, status: int = 200) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self) -> None:
                data = b'{"error": "Repository not found"}'
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, body: bool) -> None:
                parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
                if parts[:2] == ["api", "models"] and len(parts) >= 4:
                    repo = "/".join(parts[2:4])
                    if repo not in hub.repos:
                        return self._not_found()
                    files = hub._files(repo)
                    relative = [p.relative_to(hub.repos[repo]).as_posix() for p in files]
                    if len(parts) == 4 or parts[4] == "revision":
                        siblings = [
                            {"rfilename": name, "size": p.stat().st_size}
                            for name, p in zip(relative, files, strict=True)
                        ]
                        return self._json({"id": repo, "sha": COMMIT, "siblings": siblings})
                    if parts[4] == "tree":
                        return self._json(
                            [
                                {"type": "file", "path": name, "size": p.stat().st_size, "oid": _etag(p)}
                                for name, p in zip(relative, files, strict=True)
                            ]
                        )
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                    if repo not in hub.repos or not (hub.repos[repo] / name).is_file():
                        return self._not_found()
                    return self._file(hub.repos[repo] / name, body)
                return self._not_found()

            def _file(self, path: Path, body: bool) -> None:
                data = path.read_bytes()
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    hub.range_starts.append(start)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{_etag(path)}"')
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                if hub.drops_left and len(data) - start > 1024 and hub.drop_only in (None, path.name):
                    hub.drops_left -= 1
                    self.wfile.write(data[start : start + (len(data) - start) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(data[start:])

        return Handler


def _etag(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
