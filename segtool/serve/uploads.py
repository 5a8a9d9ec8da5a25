"""Uploads: the size cap and reading the image out of a request.

The cap is enforced twice: a declared Content-Length above it is refused before any byte of the
body is read, and the bytes actually received are counted as they arrive (a chunked upload, or
one that declares no length), so memory and disk never hold more than the cap.
"""

from __future__ import annotations

import json

from segtool.serve.query import RequestError


class UploadTooLarge(RequestError):
    status = 413


def too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"upload larger than the server's limit of {limit / 1e6:g} MB (--max-upload-mb)")


class UploadCap:
    """ASGI middleware: HTTP request bodies above `limit` bytes get 413."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_error(send, too_large(self.limit))
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large(self.limit)  # the app's error handler answers 413
            return message

        await self.app(scope, counted_receive, send)


async def _send_error(send, error: RequestError) -> None:
    body = json.dumps({"error": str(error)}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def read_upload(request) -> tuple[bytes, str]:
    """(image bytes, file name) from a multipart field `file`, or else the raw body.

    Only multipart/form-data is parsed as a form: `curl --data-binary @photo.jpg` sends the raw bytes
    as application/x-www-form-urlencoded, and those bytes are the image."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return await request.body(), "upload"
    # Other fields are small text; one file at most.
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError("multipart upload without a file field named 'file' (e.g. curl -F file=@photo.jpg)")
        return await upload.read(), upload.filename or "upload"
