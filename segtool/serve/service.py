"""The segmentation behind `segtool serve`: the model loaded once at start-up, one upload in, one
reply (PNG or JSON) out. Plain Python, no HTTP: the app calls `SegmentService.segment` from its
worker threads, and tests can call it directly or give the app a service of their own."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from segtool.errors import UsageError
from segtool.io.images import DEFAULT_MAX_PIXELS, decode_image
from segtool.serve.query import RequestError, SegmentQuery

SEGMENTERS_KEPT = 16  # configured segmenters kept for reuse, one per (k, rule) asked for


@dataclass
class Reply:
    body: bytes
    media_type: str
    headers: dict = field(default_factory=dict)


class SegmentService:
    """Segments uploaded image bytes with one method.

    Parameters
    ----------
    build : callable(overrides: dict) -> Segmenter
        A configured segmenter for the request's settings ({} = the method's defaults); raises
        UsageError (or ValueError) for a setting the method refuses.
    method : str
        The method's label, reported by /health and in JSON replies.
    model, device : str or None
        What /health reports: the model's name (None when the method uses none) and the device.
    max_pixels : int
        Uploads with more pixels are refused from their header, before decoding.
    """

    def __init__(self, build: Callable[[dict], object], method: str, model: str | None = None, device: str = "cpu",
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self._build = build
        self.method, self.model, self.device, self.max_pixels = method, model, device, max_pixels
        self._lock = threading.Lock()
        self.default = build({})  # the method's own settings: a bad one stops the start-up, not a request
        self._segmenters: OrderedDict = OrderedDict({(): self.default})
        # Methods without a clustering (GrabCut, RBD, ...) have no k or rule to set.
        self.tunable = getattr(self.default, "cfg", None) is not None

    def health(self) -> dict:
        return {"status": "ok", "method": self.method, "model": self.model, "device": self.device}

    def segmenter_for(self, overrides: dict):
        key = tuple(sorted(overrides.items()))
        with self._lock:
            if key in self._segmenters:
                self._segmenters.move_to_end(key)
                return self._segmenters[key]
        try:
            segmenter = self._build(dict(overrides))
        except (UsageError, ValueError) as exc:
            raise RequestError(str(exc)) from None
        with self._lock:
            self._segmenters[key] = segmenter
            while len(self._segmenters) > SEGMENTERS_KEPT:
                self._segmenters.popitem(last=False)
        return segmenter

    def segment(self, data: bytes, query: SegmentQuery, name: str = "upload") -> Reply:
        """The reply to one upload; RequestError (or the ImageLoadError of a bad image) for the client."""
        from segtool.io.render import render
        from segtool.pipeline.registry import k_beyond_grid

        started = time.perf_counter()
        if query.overrides and not self.tunable:
            raise RequestError(f"method {self.method} has no k or rule to set; leave them out")
        image = decode_image(data, "upload", self.max_pixels)
        segmenter = self.segmenter_for(query.overrides)
        height, width = image.shape[:2]
        problem = k_beyond_grid(segmenter, height, width)
        if problem:
            raise RequestError(f"k is too large for this {width}x{height} image: {problem}; choose a smaller k")
        result = segmenter.segment(image)
        seconds = time.perf_counter() - started
        summary = {"foreground_fraction": round(result.foreground_fraction, 4), "seconds": round(seconds, 3)}
        if query.output == "json":
            cfg = getattr(segmenter, "cfg", None)
            payload = {"width": width, "height": height, **summary, "method": self.method,
                       # The k of the clustering, or the k's of the vote; None for methods that cluster nothing.
                       "k": list(cfg.ks) if cfg is not None else None,
                       "rule": cfg.rule if cfg is not None else None,
                       "images": {kind: base64.b64encode(render(kind, image, result.mask)).decode("ascii")
                                  for kind in query.images}}
            return Reply(json.dumps(payload).encode(), "application/json")
        headers = {"X-Foreground-Fraction": str(summary["foreground_fraction"]), "X-Seconds": str(summary["seconds"]),
                   "Content-Disposition": f'inline; filename="{_safe_stem(name)}_{query.output}.png"'}
        return Reply(render(query.output, image, result.mask), "image/png", headers)

    def start(self) -> None:
        """Load the model now (once, shared by every segmenter the requests configure), not on the first
        request, and segment a small synthetic picture so the first request does not pay for the
        libraries the pipeline loads on first use either."""
        import numpy as np

        lazy = getattr(self.default, "extractor", None)
        if hasattr(lazy, "get"):
            lazy.get()
        picture = np.full((64, 64, 3), 40, np.uint8)
        picture[16:48, 16:48] = (220, 180, 60)
        self.default.segment(picture)


def _safe_stem(name: str) -> str:
    """An uploaded file's stem for a download name: letters, digits, '-', '_' and '.' only."""
    stem = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    kept = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in stem)[:64].strip("._")
    return kept or "upload"


def make_service(method: str = "scvae", model: str | None = None, device: str = "auto",
                 max_pixels: int = DEFAULT_MAX_PIXELS, batch_size: int = 1) -> SegmentService:
    """A service for a registry method (`scvae`, `colour-pipeline`, `scvae[k=3]`, ...): its settings are
    checked here (UsageError); its model, if it has one, loads once, at `start()`."""
    from segtool.pipeline.models import load_extractor, model_label, resolve_device
    from segtool.pipeline.registry import MethodSpec, build_segmenter, parse_method

    spec = parse_method(method)
    device_name = resolve_device(device)
    loaded: list = []
    load_lock = threading.Lock()

    def extractor():
        with load_lock:
            if not loaded:
                loaded.append(load_extractor(model, device=device_name, batch_size=batch_size))
            return loaded[0]

    def build(overrides: dict):
        return build_segmenter(MethodSpec(spec.name, {**spec.overrides, **overrides}), extractor_factory=extractor)

    service = SegmentService(build, spec.label, None, device_name, max_pixels)
    if hasattr(getattr(service.default, "extractor", None), "get"):  # the method runs a model
        service.model = model_label(model)
    return service
