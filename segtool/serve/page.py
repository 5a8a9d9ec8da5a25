"""The page of `segtool serve` and its two assets, shipped as package data (static/): plain HTML,
CSS and a little JavaScript, nothing loaded from outside the machine."""

from __future__ import annotations

# The only files served, with their media types: a name not listed here is a 404.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# The page loads its own script, style and images (data: URLs), and talks to this server only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """(content, media type) of a shipped asset, or None."""
    from importlib.resources import files

    if name not in ASSETS:
        return None
    return files("segtool.serve").joinpath("static", name).read_bytes(), ASSETS[name]
