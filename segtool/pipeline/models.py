"""Loading the SC-VAE a command uses: the shipped default unless --model names another."""

from __future__ import annotations

from segtool.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"--device {device!r}: choose auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    return device


def load_extractor(model: str | None = None, device: str = "auto", batch_size: int = 16, cache: bool = False):
    """A CodeExtractor around the named or shipped model (CheckpointError if it cannot load)."""
    import scvae

    from segtool.pipeline.extract import CodeExtractor, default_cache_dir

    dev = resolve_device(device)
    if model is None and scvae.DEFAULT_MODEL not in scvae.available_models():
        # Otherwise the message would be about a path the user never typed.
        raise scvae.CheckpointError(f"the default model {scvae.DEFAULT_MODEL!r} is not installed with this copy of "
                                    "scvae; pass --model PATH to a checkpoint folder")
    net = scvae.load(model or scvae.DEFAULT_MODEL, device=dev)
    return CodeExtractor(net, device=dev, batch_size=batch_size, cache_dir=default_cache_dir() if cache else None)


class LazyExtractor:
    """Loads the model on first use: commands whose inputs all fail never pay for torch."""

    def __init__(self, factory):
        self._factory = factory
        self._extractor = None

    def get(self):
        if self._extractor is None:
            self._extractor = self._factory()
        return self._extractor

    def extract(self, images):
        return self.get().extract(images)
