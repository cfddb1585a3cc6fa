"""The web app (Starlette): the page, its JSON, server-sent events, and the token on a non-local bind."""

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..storage import RunFileError, open_run
from . import series
from .watch import Watcher

COOKIE = "cellrig_token"
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
TICK_S = 0.5


class _Token(BaseHTTPMiddleware):
    """Every request carries the token: ``?token=`` once (then a cookie), the cookie, or ``Authorization: Bearer``."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.query_params.get("token")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        for candidate in (given, request.cookies.get(COOKIE), bearer):
            if candidate and hmac.compare_digest(candidate.encode(), self.token.encode()):
                response = await call_next(request)
                if given:
                    response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return response
        return PlainTextResponse("a token is needed: open the address cellrig serve printed\n", status_code=401)


def make_app(watcher: Watcher, title: str, token: str | None = None) -> Starlette:
    """The read-only app over ``watcher``'s runs; ``token``: required on every request when given."""
    page = files(__package__).joinpath("page.html").read_text(encoding="utf-8").replace("{{title}}", title)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    def overview_body() -> dict[str, Any]:
        return {"title": title, "version": watcher.version, "runs": watcher.rows()}

    async def overview(request: Request) -> JSONResponse:
        return JSONResponse(overview_body())

    async def run(request: Request) -> Response:
        path = watcher.path(request.path_params["run"])
        if path is None:
            return PlainTextResponse("no such run\n", status_code=404)
        hours = request.query_params.get("hours")
        try:
            window = float(hours) if hours else None
            body = await run_in_threadpool(lambda: series.page(open_run(path), window))
        except ValueError:
            return PlainTextResponse(f"hours: expected a number, got {hours!r}\n", status_code=400)
        except (RunFileError, OSError) as exc:
            return PlainTextResponse(f"{exc}\n", status_code=503)
        return JSONResponse(body)

    async def stream(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            sent, quiet = -1, 0.0
            while not await request.is_disconnected():
                if watcher.version != sent:
                    sent = watcher.version
                    yield f"event: overview\ndata: {json.dumps(overview_body())}\n\n"
                    quiet = 0.0
                elif quiet >= HEARTBEAT_S:
                    yield ": still here\n\n"
                    quiet = 0.0
                await asyncio.sleep(TICK_S)
                quiet += TICK_S

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx: do not buffer the stream
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", index),
        Route("/run/{run}", index),
        Route("/api/overview", overview),
        Route("/api/run/{run}", run),
        Route("/api/stream", stream),
    ]
    middleware = [Middleware(_Token, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)
