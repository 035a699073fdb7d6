"""Builds the FastAPI application of one emulator instance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import routes_admin, routes_api
from .callbacks import CallbackSender
from .config import EmulatorConfig
from .errors import ApiError, ErrorKind, new_request_id, render_api_error
from .middleware import EmulatorMiddleware
from .state import EmulatorState


def create_app(config: EmulatorConfig, state: EmulatorState | None = None) -> FastAPI:
    """The ASGI app; run it with ``server.serve`` (or any ASGI server, minus connection drops)."""
    state = state or EmulatorState.build(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.callbacks = CallbackSender(state)
        state.callbacks.start()
        try:
            yield
        finally:
            await state.callbacks.stop()
            state.close()

    app = FastAPI(
        title="GPTProto emulator",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.emulator = state
    app.include_router(routes_api.router)
    app.include_router(routes_admin.router)
    app.add_middleware(EmulatorMiddleware, state=state)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        request_id = request.scope.get("gptproto", {}).get("request_id") or new_request_id()
        body = render_api_error(exc, state.config.dialect, request_id)
        return JSONResponse(body, status_code=exc.status, headers={"x-request-id": request_id})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind: ErrorKind = "not_found" if exc.status_code == 404 else "invalid_parameter"
        err = ApiError(
            kind, "Not found" if exc.status_code == 404 else str(exc.detail), status=exc.status_code
        )
        return JSONResponse(
            render_api_error(err, state.config.dialect, new_request_id()), status_code=exc.status_code
        )

    return app
