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

from segtool.errors import UsageError

METHOD_NAMES = ("scvae", "colour-pipeline", "colour", "grabcut", "ellipse", "rbd")
MODEL_METHODS = ("scvae",)
LABEL_FREE_RULES = ("simple", "geodesic")


@dataclass
class MethodSpec:
    name: str
    overrides: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.overrides:
            return self.name
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.overrides.items())}]"


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
    if name not in METHOD_NAMES:
        raise UsageError(f"unknown method {text!r}; choose from {', '.join(METHOD_NAMES)}")
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
    K-means at k = 3, 4, 6 and 8, the cluster scorer picking each clustering's foreground,
    the clusterings voting per cell, holes filled and specks (< 2% of the image) dropped.
    An explicit --k replaces the vote by that one clustering."""
    from segtool.pipeline.segmenters import ClusterSettings, CodeFeatureSettings

    cluster = ClusterSettings(k=4, method="kmeans", position_weight=1.0, consensus=(3, 4, 6, 8), rule="scored",
                              refine="none", fill_holes=True, min_part=0.02)
    return cluster, CodeFeatureSettings(transform="raw", colour_weight=1.0)


def build_segmenter(spec: MethodSpec, *, extractor_factory=None, cli: dict | None = None):
    """A configured Segmenter for a method spec. `cli` holds --k/--method/--refine values that
    apply to the pipeline methods (scvae, colour-pipeline) unless the brackets override them."""
    from segtool.pipeline.segmenters import (ClusterSettings, ColourSegmenter, EllipseSegmenter, GrabCutSegmenter,
                             PipelineColourSegmenter, RBDSegmenter, SCVAESegmenter)

    overrides = dict(spec.overrides)
    try:
        if spec.name in ("scvae", "colour-pipeline"):
            cluster, codes = default_pipeline()
            for key, value in (cli or {}).items():
                if value is not None and key not in overrides:
                    overrides[key] = value
            if overrides.get("rule") in LABEL_FREE_RULES:
                # A label-free rule brings the settings measured best for it (docs/PIPELINE.md): the
                # vote over k = 2, 3, 4 and GrabCut; among the fine clusters of k = 6 or 8 it picks badly.
                if "k" not in overrides:
                    overrides.setdefault("consensus", (2, 3, 4))
                overrides.setdefault("refine", "grabcut")
            if "k" in overrides and "consensus" not in overrides:
                overrides["consensus"] = ()  # an explicit k means that one clustering
            _apply(cluster, overrides, spec)
            _apply(codes, overrides, spec)
            cluster.__post_init__()
            if overrides:
                raise UsageError(f"method {spec.label}: unknown setting(s) {', '.join(overrides)}")
            if spec.name == "scvae":
                if extractor_factory is None:
                    raise UsageError("the scvae method needs a model")
                from segtool.pipeline.models import LazyExtractor

                return SCVAESegmenter(LazyExtractor(extractor_factory), cluster, codes)
            return PipelineColourSegmenter(cluster, codes)
        if spec.name == "colour":
            cluster = ClusterSettings(k=3, method="kmeans", position_weight=20.0)
            grid = overrides.pop("grid", 32)
            _apply(cluster, overrides, spec)
            cluster.__post_init__()
            if overrides:
                raise UsageError(f"method {spec.label}: unknown setting(s) {', '.join(overrides)}")
            return ColourSegmenter(cluster, grid=grid)
        if spec.name == "grabcut":
            return GrabCutSegmenter(**overrides)
        if spec.name == "rbd":
            return RBDSegmenter(**overrides)
        return EllipseSegmenter(**overrides)
    except TypeError as exc:
        raise UsageError(f"method {spec.label}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"method {spec.label}: {exc}") from None


def clustering_grid(segmenter, height: int, width: int) -> tuple[int, int] | None:
    """The h x w grid a segmenter clusters for an image of this size, or None when it clusters no
    grid (GrabCut, ellipse, RBD). For the SC-VAE this loads the model: the grid follows its downsampling."""
    from segtool.pipeline.extract import model_input_size
    from segtool.pipeline.segmenters import ColourSegmenter, PipelineColourSegmenter, SCVAESegmenter

    if isinstance(segmenter, PipelineColourSegmenter):
        h, w = model_input_size(height, width, side=segmenter.input_side, multiple=segmenter.factor)
        return h // segmenter.factor, w // segmenter.factor
    if isinstance(segmenter, SCVAESegmenter):
        extractor = segmenter.extractor
        extractor = extractor.get() if hasattr(extractor, "get") else extractor
        h, w = extractor.input_size(height, width)
        return h // extractor.factor, w // extractor.factor
    if isinstance(segmenter, ColourSegmenter):
        return segmenter.grid, segmenter.grid
    return None


def k_beyond_grid(segmenter, height: int, width: int) -> str | None:
    """Why the segmenter's k cannot work on an image of this size (more clusters than grid cells),
    or None. The clustering itself would stop with a bare ValueError deep in the pipeline."""
    cfg = getattr(segmenter, "cfg", None)
    k = max(cfg.ks) if cfg is not None else None
    if k is None:
        return None
    grid = clustering_grid(segmenter, height, width)
    if grid is None or k <= grid[0] * grid[1]:
        return None
    return f"k = {k} clusters is more than the {grid[0]}x{grid[1]} = {grid[0] * grid[1]} cells of the grid it clusters"
