"""Pictures made of tiles: rows of equal-sized images with gaps, an optional header of labels."""

from __future__ import annotations

import numpy as np

GAP = 4
WHITE = 255


def tile_rows(rows: list[list[np.ndarray]], gap: int = GAP) -> np.ndarray:
    """Tiles [h, w, 3] laid out row by row on white; rows may have different lengths."""
    h, w = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + gap) - gap, columns * (w + gap) - gap, 3), WHITE, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = tile
    return canvas


def with_header(canvas: np.ndarray, labels: list[str], column_width: int, gap: int = GAP) -> np.ndarray:
    """A white band above the canvas with one label per column (left-aligned over its column)."""
    import cv2

    band = np.full((22, canvas.shape[1], 3), WHITE, np.uint8)
    for j, label in enumerate(labels):
        x = j * (column_width + gap) + 2
        # Long names are cut to the column, not left to run over the next label.
        text = label if len(label) * 8 <= column_width else label[: max(1, column_width // 8 - 1)] + "~"
        cv2.putText(band, text, (x, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, canvas], axis=0)


def enlarge(tile: np.ndarray, side: int) -> np.ndarray:
    """A small patch shown at `side` pixels, nearest neighbour so its pixels stay visible."""
    import cv2

    return cv2.resize(tile, (side, side), interpolation=cv2.INTER_NEAREST)
