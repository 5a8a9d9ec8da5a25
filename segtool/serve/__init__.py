"""`segtool serve`: a local HTTP API (POST /segment, GET /health) and a page to drop images on.

    service    the segmenter, loaded once; one upload in, one PNG or JSON reply out (no HTTP here)
    query      the query string of POST /segment, checked against the pipeline's own limits
    uploads    the upload size cap (Content-Length and the bytes actually read) and reading the upload
    capacity   at most `workers` segmentations at once, a short bounded queue, 503 beyond it
    page       the page and its script and style, shipped in static/
    app        the Starlette app tying these together; server: listening socket and uvicorn
"""
