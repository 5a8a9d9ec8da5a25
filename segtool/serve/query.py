"""The query string of `POST /segment`, checked where it enters, with the limits `segment` uses
(segtool.settings), so a request is refused with the same reasons as a command line."""

from __future__ import annotations

from dataclasses import dataclass

from segtool.errors import SegtoolError
from segtool.settings import ClusterSettings

OUTPUTS = ("mask", "cutout", "overlay", "json")
EMBEDDABLE = ("mask", "overlay", "cutout")  # PNGs a JSON reply may carry, base64-encoded
PARAMETERS = ("output", "k", "rule", "images")


class RequestError(SegtoolError):
    """A request the client must change; `status` is the HTTP status of the reply."""

    status = 400


@dataclass(frozen=True)
class SegmentQuery:
    output: str = "mask"
    k: int | None = None            # None: the method's own (for the pipeline, the vote over several k)
    rule: str | None = None         # None: the method's own foreground rule
    images: tuple[str, ...] = ()    # with output=json: renderings embedded as base64 PNGs

    @property
    def overrides(self) -> dict:
        """The method settings this request changes."""
        return {name: value for name, value in (("k", self.k), ("rule", self.rule)) if value is not None}


def parse_query(params) -> SegmentQuery:
    """A SegmentQuery from a mapping of query parameters (each given once), or RequestError."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise RequestError(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(PARAMETERS)}")
    output = params.get("output", "mask")
    if output not in OUTPUTS:
        raise RequestError(f"output={output!r}: choose one of {', '.join(OUTPUTS)}")
    k = _whole(params["k"], "k") if "k" in params else None
    rule = params.get("rule")
    try:
        if k is not None:
            k = ClusterSettings.LIMITS["k"].check("k", k)
        if rule is not None:
            rule = ClusterSettings.LIMITS["rule"].check("rule", rule)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    images = tuple(part.strip() for part in params.get("images", "").split(",") if part.strip())
    for name in images:
        if name not in EMBEDDABLE:
            raise RequestError(f"images={name!r}: choose from {', '.join(EMBEDDABLE)} (comma-separated)")
    if images and output != "json":
        raise RequestError("images=... embeds PNGs in a JSON reply: use it with output=json")
    return SegmentQuery(output, k, rule, tuple(dict.fromkeys(images)))


def _whole(text: str, name: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise RequestError(f"{name}={shown!r}: give a whole number") from None
