"""Method names -> configured segmenters, for `segment` and `eval`.

    scvae              the SC-VAE pipeline with the measured defaults (see docs/PIPELINE.md)
    colour-pipeline    the same pipeline (clustering, foreground rule, refinement) on Lab colour
                       features instead of codes: the ablation that isolates what the codes add
    colour             classical colour K-means: 32x32 Lab + 20 x position, k=3, simple BndCon
    grabcut            OpenCV GrabCut from a centred rectangle inset 10%, 5 iterations
    ellipse            a centred ellipse (axes 0.7 of the image): the shape prior alone
    rbd                robust background detection saliency (Zhu et al., CVPR 2014) on ~200 SLIC
                       superpixels, Otsu threshold; `rbd[link_boundary=false]` keeps border regions apart

A method may carry overrides in brackets: `scvae[k=3,method=kmeans,refine=none]`,
`colour[k=2,method=spectral]`. Values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from segtool.params import key_list
from segtool.errors import UsageError

LABEL_FREE_RULES = ("simple", "geodesic")


@dataclass
class MethodSpec:
    name: str
    overrides: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        text = self.name if not self.overrides else \
            f"{self.name}[{','.join(f'{k}={v}' for k, v in self.overrides.items())}]"
        return text if text.isprintable() else repr(text)  # a label sits inside one-line messages


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_method(text: str) -> MethodSpec:
    from segtool.yamltext import parse_scalar

    text = text.strip()
    name, _, rest = text.partition("[")
    name = name.strip().lower().replace("color", "colour")
    if name not in SEGMENTERS:
        raise UsageError(f"unknown method {text!r}; choose from {', '.join(SEGMENTERS)}")
    overrides: dict = {}
    if rest:
        if not rest.endswith("]"):
            raise UsageError(f"method {text!r}: missing closing ']'")
        for item in split_top_level(rest[:-1]):
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"method {text!r}: expected key=value inside the brackets, got {item!r}")
            overrides[key.strip()] = parse_scalar(value)
    return MethodSpec(name, overrides)


def parse_method_list(text: str | None) -> list[MethodSpec]:
    return [parse_method(p) for p in split_top_level(text)] if text else []


def _apply(target, overrides: dict, spec: MethodSpec) -> None:
    fields = {f.name for f in dataclasses.fields(target)}
    for key, value in list(overrides.items()):
        if key in fields:
            setattr(target, key, value)
            overrides.pop(key)


def default_pipeline():
    """The measured default pipeline (docs/PIPELINE.md gives the figures behind each choice):
    codes + Lab colour (equal weight after standardising) + position on the 32x32 grid,
    K-means at k = 6, 8 and 12, the cluster scorer picking each clustering's foreground,
    the clusterings voting per cell, holes filled and specks (< 2% of the image) dropped.
    An explicit k replaces the vote by that one clustering."""
    from segtool.settings import ClusterSettings, CodeFeatureSettings

    return ClusterSettings(), CodeFeatureSettings()


def _merge_cli(overrides: dict, cli: dict | None) -> None:
    """Command-line pipeline options apply unless the brackets say otherwise."""
    if "clustering" in overrides:  # the clearer name of the clustering algorithm's setting
        overrides["method"] = overrides.pop("clustering")
    for key, value in (cli or {}).items():
        if value is not None and key not in overrides:
            overrides[key] = value
    if overrides.get("rule") in LABEL_FREE_RULES:
        # A label-free rule brings the settings measured best for it (docs/PIPELINE.md): the
        # vote over k = 2, 3, 4 and GrabCut; among the fine clusters of k = 6 or 8 it picks badly.
        if "k" not in overrides:
            overrides.setdefault("consensus", (2, 3, 4))
        overrides.setdefault("refine", "grabcut")
        # Nor does it take the saliency vote, whose weight was chosen on labelled images: the
        # label-free pipeline stays what it was, free of anything fit to masks, unless asked.
        overrides.setdefault("saliency_weight", 0.0)
        overrides.setdefault("mask_cut", 0.5)
    if "k" in overrides and "consensus" not in overrides:
        overrides["consensus"] = ()  # an explicit k means that one clustering


def _settings_from(overrides: dict, spec: MethodSpec, cluster, codes=None) -> None:
    _apply(cluster, overrides, spec)
    if codes is not None:
        _apply(codes, overrides, spec)
        codes.__post_init__()
    cluster.__post_init__()
    if overrides:
        raise UsageError(f"method {spec.label}: unknown setting(s) {key_list(overrides)}")


def _scvae(overrides: dict, extractor_factory, cli):
    from segtool.pipeline.models import LazyExtractor
    from segtool.pipeline.segmenters import SCVAESegmenter

    _merge_cli(overrides, cli)
    cluster, codes = default_pipeline()
    _settings_from(overrides, MethodSpec("scvae", dict(overrides)), cluster, codes)
    if extractor_factory is None:
        raise UsageError("the scvae method needs a model")
    return SCVAESegmenter(LazyExtractor(extractor_factory), cluster, codes)


def _colour_pipeline(overrides: dict, extractor_factory, cli):
    from segtool.pipeline.segmenters import PipelineColourSegmenter

    _merge_cli(overrides, cli)
    cluster, codes = default_pipeline()
    _settings_from(overrides, MethodSpec("colour-pipeline", dict(overrides)), cluster, codes)
    return PipelineColourSegmenter(cluster, codes)


def _colour(overrides: dict, extractor_factory, cli):
    from segtool.pipeline.segmenters import ColourSegmenter

    cluster = ColourSegmenter.default_settings()
    grid = overrides.pop("grid", 32)
    _settings_from(overrides, MethodSpec("colour", dict(overrides)), cluster)
    return ColourSegmenter(cluster, grid=grid)


def _plain(class_name: str):
    """A builder for a segmenter configured by keyword arguments alone."""
    def build(overrides: dict, extractor_factory, cli):
        from segtool.pipeline import segmenters

        return getattr(segmenters, class_name)(**overrides)
    return build


# The one table of methods: name -> builder(overrides, extractor_factory, cli) -> Segmenter.
# Add a method with one line here (and its class in segmenters.py); the command line's method list, its help and
# the contract test (tests/test_segmenter_contract.py) find it.
SEGMENTERS: dict = {
    "scvae": _scvae,
    "colour-pipeline": _colour_pipeline,
    "colour": _colour,
    "grabcut": _plain("GrabCutSegmenter"),
    "ellipse": _plain("EllipseSegmenter"),
    "rbd": _plain("RBDSegmenter"),
}


def method_names() -> tuple[str, ...]:
    return tuple(SEGMENTERS)


def build_segmenter(spec: MethodSpec, *, extractor_factory=None, cli: dict | None = None, workers: int | None = None):
    """A configured Segmenter for a method spec. `cli` holds the pipeline options (k, method,
    refine, rule) that apply to the pipeline methods unless the brackets override them. `workers`:
    the images of a batch segmented at once, one per thread (default: the cores available, at
    most 8; segtool.pipeline.parallel); the masks do not depend on it."""
    from segtool.pipeline.parallel import default_workers

    builder = SEGMENTERS.get(spec.name)
    if builder is None:
        raise UsageError(f"unknown method {spec.name!r}; choose from {', '.join(SEGMENTERS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"workers must be a whole number of at least 1, got {workers!r}")
    try:
        segmenter = builder(dict(spec.overrides), extractor_factory, cli)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"method {spec.label}: {exc}") from None
    segmenter.workers = workers or default_workers()
    return segmenter


def k_beyond_grid(segmenter, height: int, width: int) -> str | None:
    """Why the segmenter's k cannot work on an image of this size (more clusters than grid cells),
    or None. The clustering itself would stop with a bare ValueError deep in the pipeline."""
    cfg = getattr(segmenter, "cfg", None)
    k = max(cfg.ks) if cfg is not None else None
    if k is None:
        return None
    grid = segmenter.grid_size(height, width)
    if grid is None or k <= grid[0] * grid[1]:
        return None
    return f"k = {k} clusters is more than the {grid[0]}x{grid[1]} = {grid[0] * grid[1]} cells of the grid it clusters"
