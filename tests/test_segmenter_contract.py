"""One contract for every registered segmenter, as scikit-learn's check_estimator: it builds by
name, refuses a bad setting at construction, returns on a one-object image a mask of the
image's size that is neither empty nor full, and gives the same mask twice."""

import numpy as np
import pytest

from segtool.errors import UsageError
from segtool.pipeline import registry
from segtool.pipeline.registry import SEGMENTERS, MethodSpec, build_segmenter, parse_method
from segtool.pipeline.segmenters import SegmentResult, Segmenter


def one_object_image(h: int = 72, w: int = 88) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = (60 + rng.integers(0, 30, (h, w, 3))).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    image[(yy - h / 2) ** 2 / 20 ** 2 + (xx - w / 2) ** 2 / 24 ** 2 < 1] = (230, 190, 40)
    return image


def build(name: str, tiny_model, **overrides):
    from segtool.pipeline.models import load_extractor

    return build_segmenter(MethodSpec(name, overrides), extractor_factory=lambda: load_extractor(tiny_model))


def check_segmenter(name: str, tiny_model) -> None:
    with pytest.raises(UsageError, match=f"method {name}"):
        build(name, tiny_model, no_such_setting=1)
    image = one_object_image()
    first = build(name, tiny_model).segment(image)
    second = build(name, tiny_model).segment(image)
    assert isinstance(first, SegmentResult)
    assert first.mask.shape == image.shape[:2] and first.mask.dtype == bool
    assert 0 < first.mask.mean() < 1, f"{name}: the mask is empty or full"
    assert np.array_equal(first.mask, second.mask), f"{name}: not deterministic"


@pytest.mark.parametrize("name", list(SEGMENTERS))
def test_every_registered_segmenter_keeps_the_contract(name, tiny_model):
    check_segmenter(name, tiny_model)


@pytest.mark.parametrize("name", list(SEGMENTERS))
def test_every_registered_segmenter_gives_the_same_masks_in_order_with_workers(name, tiny_model):
    from segtool.pipeline.models import load_extractor

    # Images that differ (in size too, for the methods that ignore the pixels), so a result in the
    # wrong place shows.
    images = [np.roll(one_object_image(72, w), shift, axis=1) for w, shift in ((88, -20), (96, -8), (80, 0), (88, 9), (104, 21))]
    masks = {}
    for workers in (1, 3):
        segmenter = build_segmenter(MethodSpec(name, {}), extractor_factory=lambda: load_extractor(tiny_model),
                                    workers=workers)
        assert segmenter.workers == workers
        masks[workers] = [r.mask for r in segmenter.iter_batch(images)]
    assert len(masks[3]) == len(images)
    assert all(np.array_equal(a, b) for a, b in zip(masks[1], masks[3])), f"{name}: workers changed a mask"
    assert not all(masks[1][0].shape == m.shape and np.array_equal(masks[1][0], m) for m in masks[1][1:])


def test_workers_are_checked_when_the_segmenter_is_built():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UsageError, match="workers"):
            build_segmenter(parse_method("grabcut"), workers=bad)


class ToySegmenter(Segmenter):
    """The brightest third of the pixels: a method a newcomer adds in one class and one line."""

    name = "toy"

    def __init__(self, fraction: float = 1 / 3):
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        self.fraction = fraction

    def segment(self, image):
        grey = image.mean(axis=-1)
        return SegmentResult(mask=grey > np.quantile(grey, 1 - self.fraction))


def test_a_new_segmenter_is_one_class_and_one_registry_line(monkeypatch, tiny_model, capsys):
    from segtool.cli.app import main

    monkeypatch.setitem(SEGMENTERS, "toy", lambda overrides, extractor_factory, cli: ToySegmenter(**overrides))
    assert parse_method("toy[fraction=0.25]").overrides == {"fraction": 0.25}
    assert "toy" in registry.method_names()
    check_segmenter("toy", tiny_model)
    with pytest.raises(UsageError, match="fraction must be in"):
        build("toy", tiny_model, fraction=2)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "toy" in capsys.readouterr().out


def test_the_classes_defaults_are_the_tools_defaults():
    """`SCVAESegmenter(extractor)` in Python runs what `segtool segment` runs."""
    from dataclasses import asdict

    from segtool.pipeline.segmenters import PipelineColourSegmenter, SCVAESegmenter

    built = build_segmenter(MethodSpec("scvae"), extractor_factory=lambda: None)
    direct = SCVAESegmenter(None)
    assert asdict(direct.cfg) == asdict(built.cfg) and asdict(direct.code_cfg) == asdict(built.code_cfg)
    assert direct.cfg.ks == (6, 8, 12) and direct.cfg.rule == "scored"
    colour = build_segmenter(MethodSpec("colour-pipeline"))
    assert asdict(PipelineColourSegmenter().cfg) == asdict(colour.cfg)
