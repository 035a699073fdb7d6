"""Running the app under uvicorn: free-port binding, the URL line, drops, clean shutdown.

The protocol class is uvicorn's own, extended only to put the connection's transport
into each request's ``scope["state"]``: that is what lets a fault rule close the TCP
connection without any reply, which an ASGI app otherwise cannot do.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .app import create_app
from .config import DEFAULT_PORT, EmulatorConfig
from .middleware import TRANSPORT_KEY
from .state import EmulatorState


class _TransportExposingProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, plus the transport in every request scope's state."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        shared: dict[str, Any] = self.app_state  # type: ignore[has-type]
        self.app_state = {**shared, TRANSPORT_KEY: transport}


class _Server(uvicorn.Server):
    """Prints the base URL once the server is really accepting connections."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.announce_url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            sys.stdout.write(self.announce_url + "\n")
            sys.stdout.flush()


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so --port 0 can report the port the OS picked."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def listen_port(requested: int | None, recorded: int | None) -> int:
    """An explicit non-zero ``--port`` wins; else the state file's port, so a restart keeps its URL.

    Without either, ``--port 0`` picks a free port and no ``--port`` means DEFAULT_PORT.
    """
    if requested:
        return requested
    if recorded:
        return recorded
    return DEFAULT_PORT if requested is None else 0


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _watch_parent(server: uvicorn.Server, parent_pid: int) -> None:
    """Exit when the process that started us is gone, so test runs never leave servers behind."""
    while not server.should_exit:
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            server.should_exit = True
            return
        except PermissionError:
            pass
        if os.getppid() == 1 and parent_pid != 1:
            server.should_exit = True
            return
        time.sleep(0.5)


def _exit_cleanly(signum: int, _frame: Any) -> None:
    # uvicorn re-raises the signal after its graceful shutdown; by then all is saved.
    raise SystemExit(0)


def serve(config: EmulatorConfig) -> None:
    """Run until SIGTERM/SIGINT (or the parent process dies); saves the state file on the way out."""
    state = EmulatorState.build(config)
    port = listen_port(config.port, state.store.port)
    try:
        sock = bind(config.host, port)
    except OSError as exc:
        state.close()
        where = f" (recorded in {config.state_file})" if port == state.store.port and not config.port else ""
        raise SystemExit(
            f"gptproto-emulator: cannot listen on {config.host}:{port}{where}: {exc.strerror};"
            " stop whatever uses it or pass another --port"
        ) from None
    state.store.record_port(sock.getsockname()[1])
    app = create_app(config, state)
    uv_config = uvicorn.Config(
        app,
        http=_TransportExposingProtocol,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=30,
    )
    server = _Server(uv_config, url_for(sock))
    if config.parent_pid:
        threading.Thread(target=_watch_parent, args=(server, config.parent_pid), daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
