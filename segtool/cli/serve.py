"""The `serve` command: options checked, the port bound and the model loaded once, then the HTTP app
(segtool.serve) runs until Ctrl-C."""

from __future__ import annotations

import sys

from segtool.cli.options import check_device
from segtool.errors import SegtoolError, UsageError

SERVE_LIBRARIES = (("starlette", "starlette"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart"))
MAX_UPLOAD_MB = 4096


def run_serve(*, host: str = "127.0.0.1", port: int = 7860, workers: int = 1, queue: int = 8, queue_wait: float = 10.0,
              max_upload_mb: float = 20.0, max_pixels: int = 100_000_000, method: str = "scvae", model: str | None = None,
              device: str = "auto") -> int:
    from segtool.pipeline.registry import parse_method

    # Every option checked before the model, torch or the server libraries load.
    if not 0 < max_upload_mb <= MAX_UPLOAD_MB:
        raise UsageError(f"--max-upload-mb {max_upload_mb:g}: give a size above 0 and at most {MAX_UPLOAD_MB} (MB)")
    if not 0 <= queue_wait <= 3600:
        raise UsageError(f"--queue-wait {queue_wait:g}: give seconds from 0 to 3600")
    if not host.strip():
        raise UsageError("--host: give an address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    spec = parse_method(method)
    check_device(device)
    _check_serve_libraries()

    from segtool.serve.app import create_app
    from segtool.serve.server import listen, make_server, url_of
    from segtool.serve.service import make_service

    service = make_service(spec.label, model=model, device=device, max_pixels=max_pixels)  # settings checked
    sock = listen(host, port)  # a port in use is reported now, not after the model loads
    try:
        say(f"loading {service.method} ...")
        service.start()
        app = create_app(service, workers=workers, queue=queue, wait=queue_wait,
                         max_upload_bytes=int(max_upload_mb * 1_000_000))
        model_text = f", model {service.model}" if service.model else ""
        say(f"segtool serve: {url_of(sock)} (method {service.method}{model_text} on {service.device}; "
            f"{workers} worker{'s' if workers > 1 else ''}, uploads up to {max_upload_mb:g} MB); Ctrl-C stops")
        if host not in ("127.0.0.1", "localhost", "::1"):
            say(f"note: --host {host} accepts connections from other machines; the server has no authentication")
        make_server(app).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _check_serve_libraries() -> None:
    from importlib.util import find_spec

    missing = [package for module, package in SERVE_LIBRARIES if find_spec(module) is None]
    if missing:
        raise SegtoolError(f"segtool serve needs {', '.join(missing)}: pip install 'segtool[serve]' "
                           f"(or pip install {' '.join(missing)})")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
