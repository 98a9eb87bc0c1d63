"""The HTTP side of Hello Service: /, /hello?name=…, /health."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent


def version() -> str:
    try:
        return (ROOT / "VERSION").read_text().strip()
    except FileNotFoundError:
        return "unknown"


def greeting(name: str | None) -> str:
    """The greeting for ``name``; strangers are greeted as the world."""
    cleaned = (name or "").strip()
    return f"Hello, {cleaned}!" if cleaned else "Hello, world!"


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(200, json.dumps({"status": "ok", "version": version()}),
                       "application/json")
        elif url.path in {"/", "/hello"}:
            name = parse_qs(url.query).get("name", [None])[0]
            self._send(200, greeting(name) + "\n")
        else:
            self._send(404, "not found\n")

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"hello-service: {format % args}\n")


def serve(port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    server = serve(int(os.environ.get("PORT", "8080")))
    print(f"hello-service {version()} on http://127.0.0.1:{server.server_address[1]}/",
          flush=True)
    server.serve_forever()
