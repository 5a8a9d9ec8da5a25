"""Loading the SC-VAE a segmenter uses: the shipped default unless another model is named."""

from __future__ import annotations

from segtool.errors import SegtoolError


def resolve_device(device: str) -> str:
    """The device to run on, by scvae's one rule (scvae.devices.DeviceError for a bad choice):
    under torchrun (an evaluation split over processes) each process takes its own GPU, LOCAL_RANK."""
    import os

    from scvae.devices import pick_device

    return str(pick_device(device, local_rank=int(os.environ.get("LOCAL_RANK", "0"))))


def model_label(model: str | None) -> str:
    """The name of the model `load_extractor(model)` loads: the one given, or the shipped default."""
    import scvae

    return model or scvae.DEFAULT_MODEL


class MissingDefaultModel(SegtoolError):
    """No model was named and the shipped default is not installed."""


def load_model(model: str | None = None, device: str = "auto"):
    """The named model (a shipped name or a checkpoint path) or the shipped default, on `device`
    (CheckpointError if it cannot load)."""
    import scvae

    if model is None and scvae.DEFAULT_MODEL not in scvae.available_models():
        # Otherwise the message would be about a path the user never typed.
        raise MissingDefaultModel(f"the default model {scvae.DEFAULT_MODEL!r} is not installed with this copy of "
                                  "scvae; name a checkpoint folder instead")
    return scvae.load(model or scvae.DEFAULT_MODEL, device=resolve_device(device))


def load_extractor(model: str | None = None, device: str = "auto", batch_size: int = 16, cache: bool = False,
                   cache_dir: str | None = None, precision: str = "auto"):
    """A CodeExtractor around the named or shipped model (CheckpointError if it cannot load).
    With `cache`, codes are kept under `cache_dir`/codes (the default cache root when None);
    `precision` as CodeExtractor takes it."""
    from segtool.locations import codes_cache_dir
    from segtool.pipeline.extract import CodeExtractor

    dev = resolve_device(device)
    net = load_model(model, dev)
    return CodeExtractor(net, device=dev, batch_size=batch_size, cache_dir=codes_cache_dir(cache_dir) if cache else None,
                         precision=precision)


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
