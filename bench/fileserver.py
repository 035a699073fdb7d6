"""Benchmark 3's zero-copy video host: serves one file at every path with ``sendfile``.

Why not the emulator or ``python -m http.server``: both copy every byte through user space (uvicorn's
response body, ``shutil.copyfileobj``), so on a 2-core machine the server takes CPU the client needs
and the measurement mixes the two. The stdlib server parses the request; only the body is sent by
the kernel, so the client's figures are the client's.
"""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    path_to_serve: ClassVar[str] = ""

    def _head(self) -> int:
        size = os.path.getsize(self.path_to_serve)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        return size

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        with open(self.path_to_serve, "rb") as body:
            self.wfile.flush()
            self.connection.sendfile(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fileserver")
    parser.add_argument("--file", required=True, help="the file served at every path")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _Handler.path_to_serve = args.file
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
