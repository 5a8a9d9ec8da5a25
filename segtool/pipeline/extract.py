"""Patch-code extraction: images -> h x w x K SC-VAE sparse-code grids, batched, cached on disk.

Encoding dominates the cost of segmentation, so codes are cached keyed by (model weights,
model input size, image pixels): sweeping k, methods or thresholds never re-encodes, and a
noisy copy of an image (different pixels) gets its own entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from segtool.pipeline.features import resize_image

DEFAULT_INPUT_SIDE = 256
# The encoder levels run in bfloat16 under precision "bfloat16" (see scvae.modules.Encoder.forward).
BFLOAT16_LEVELS = 3


def default_cache_dir() -> Path:
    from segtool.locations import codes_cache_dir

    return codes_cache_dir()


def model_input_size(height: int, width: int, side: int = DEFAULT_INPUT_SIDE, multiple: int = 8,
                     min_cells: int = 4) -> tuple[int, int]:
    """The (H, W) the model sees: about side x side pixels in all, the image's aspect ratio kept
    (clamped to 1:8), both multiples of the downsampling factor, at least `min_cells` cells a side."""
    aspect = min(max(width / height, 1 / 8), 8)
    h = side / np.sqrt(aspect)
    w = side * np.sqrt(aspect)
    lo = multiple * min_cells

    def snap(v: float) -> int:
        return max(lo, int(round(v / multiple)) * multiple)

    return snap(h), snap(w)


def model_digest(model) -> str:
    """A short hash of the model's weights and config: the cache namespace."""
    import json

    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class CodeExtractor:
    """Turns RGB uint8 images into code grids [h, w, K] (float32) with a given SCVAE.

    Parameters
    ----------
    model : scvae.SCVAE
        The backbone; put in eval mode on `device`.
    device : str, default "cpu"
    batch_size : int, default 16
        Images encoded per forward pass.
    cache_dir : path, optional
        Codes cached on disk, keyed by model, image bytes and input size; None disables it.
    input_side : int, default 256
        The long side the model sees (the short side follows the aspect, clamped to 1:8).
    precision : {"auto", "float32", "bfloat16"}, default "auto"
        The encoder's convolutions in bfloat16 (LISTA stays float32) or float32; auto takes
        bfloat16 where the device runs it natively (scvae.devices.pick_precision). bfloat16 runs
        the encoder's three finest resolution levels (most of its FLOPs) in bfloat16 and the rest
        in float32: about 1.6x faster on a CPU with AMX, codes about 0.4% (relative L2) from
        float32's. Cached codes are kept apart by precision.
    """

    def __init__(self, model, device: str = "cpu", batch_size: int = 16, cache_dir: str | Path | None = None,
                 input_side: int = DEFAULT_INPUT_SIDE, precision: str = "auto"):
        import torch

        from scvae.devices import pick_precision

        # Channels-last convolutions run about 1.3x faster on a CPU (oneDNN's native layout) and
        # give the same codes to float32 rounding; the weights' values are untouched.
        self.model = model.eval().to(device).to(memory_format=torch.channels_last)
        self.device = device
        self.batch_size = batch_size
        self.input_side = input_side
        self.factor = model.config.downsample_factor
        self.precision = pick_precision(precision, device)
        namespace = model_digest(model) + (f"-bf16x{BFLOAT16_LEVELS}" if self.precision == "bfloat16" else "")
        self.cache_dir = Path(cache_dir) / namespace if cache_dir else None

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(height, width, self.input_side, self.factor)

    def _key(self, image: np.ndarray, size: tuple[int, int]) -> str:
        h = hashlib.sha1(np.ascontiguousarray(image).tobytes())
        h.update(f"{image.shape}|{size}".encode())
        return h.hexdigest()

    def _load_cached(self, key: str) -> np.ndarray | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / key[:2] / f"{key}.npy"
        try:
            return np.load(path).astype(np.float32)
        except (OSError, ValueError):
            return None  # absent, or torn by a killed run: recompute

    def _store(self, key: str, codes: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        from scvae.fileio import atomic_write_bytes
        import io

        buffer = io.BytesIO()
        np.save(buffer, codes.astype(np.float16))
        atomic_write_bytes(self.cache_dir / key[:2] / f"{key}.npy", buffer.getvalue())

    def extract(self, images: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        results: list[np.ndarray | None] = [None] * len(images)
        pending: dict[tuple[int, int], list[tuple[int, str]]] = {}
        for i, image in enumerate(images):
            size = self.input_size(*image.shape[:2])
            key = self._key(image, size)
            cached = self._load_cached(key)
            if cached is not None:
                results[i] = cached
            else:
                pending.setdefault(size, []).append((i, key))
        levels = BFLOAT16_LEVELS if self.precision == "bfloat16" else 0
        with torch.inference_mode():
            for (h, w), items in pending.items():
                for start in range(0, len(items), self.batch_size):
                    chunk = items[start:start + self.batch_size]
                    batch = np.stack([resize_image(images[i], w, h) for i, _ in chunk]).astype(np.float32)
                    x = torch.from_numpy(batch).permute(0, 3, 1, 2).div(127.5).sub(1.0).to(self.device)
                    x = x.contiguous(memory_format=torch.channels_last)
                    # Rounded to float16, the cache's precision, so cold and warm runs agree exactly.
                    codes = self.model.sparse_codes(x, levels) if levels else self.model.sparse_codes(x)
                    codes = codes.float().cpu().numpy().astype(np.float16).astype(np.float32)
                    for (i, key), z in zip(chunk, codes):
                        results[i] = z
                        self._store(key, z)
        return results  # type: ignore[return-value]
