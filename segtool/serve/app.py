"""The HTTP app of `segtool serve` (Starlette):

    GET  /                 the page (drop or pick an image: mask, overlay and cut-out side by side)
    GET  /static/NAME      its script and style
    GET  /health           {"status", "method", "model", "device", "workers", "running", "waiting", "queue"}
    POST /segment          the image as a multipart field `file` or as the raw body;
                           ?output=mask|cutout|overlay|json, &k=, &rule=, &images=mask,overlay,cutout (json)

Every refusal is a 4xx (503 when busy) with a one-line JSON body {"error": reason}. Anything else is a
bug: its traceback goes to the server's log, and the client gets a 500 without it.
"""

from __future__ import annotations

import logging

from segtool.errors import SegtoolError
from segtool.serve.capacity import Busy, WorkSlots
from segtool.serve.page import SECURITY_HEADERS, asset
from segtool.serve.query import parse_query
from segtool.serve.service import SegmentService
from segtool.serve.uploads import UploadCap, read_upload

log = logging.getLogger("segtool.serve")


def create_app(service: SegmentService, *, workers: int = 1, queue: int = 8, wait: float = 10.0,
               max_upload_bytes: int = 20_000_000):
    """The ASGI app: `service` segments, at most `workers` at a time, `queue` more waiting up to `wait`
    seconds; request bodies above `max_upload_bytes` get 413."""
    import anyio
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    slots = WorkSlots(workers, queue, wait)

    def page_file(name: str):
        found = asset(name)
        if found is None:
            raise HTTPException(404, f"no such file: static/{name}")
        content, media_type = found
        return Response(content, media_type=media_type, headers=SECURITY_HEADERS)

    async def index(request):
        return page_file("index.html")

    async def static(request):
        return page_file(request.path_params["name"])

    async def health(request):
        return JSONResponse({**service.health(), **slots.state()})

    async def segment(request):
        query = parse_query(request.query_params)
        data, name = await read_upload(request)
        async with slots.slot():
            reply = await anyio.to_thread.run_sync(service.segment, data, query, name)
        return Response(reply.body, media_type=reply.media_type, headers=reply.headers)

    def refused(request, exc: SegtoolError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", 400), headers=headers)

    def http_error(request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    def bug(request, exc: Exception):
        # Starlette logs the traceback after this reply; the client sees no internals.
        log.error("%s %s failed unexpectedly (a bug; traceback follows)", request.method, request.url.path)
        return JSONResponse({"error": "internal error; the server's log has the details"}, status_code=500)

    app = Starlette(routes=[Route("/", index), Route("/static/{name}", static), Route("/health", health),
                            Route("/segment", segment, methods=["POST"])],
                    exception_handlers={SegtoolError: refused, HTTPException: http_error, Exception: bug})
    return UploadCap(app, max_upload_bytes)
