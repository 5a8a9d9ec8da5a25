"""The pipeline's settings: declared types, limits and defaults, importable without numpy,
torch, scikit-learn or OpenCV, so every option is checked before any heavy import.

The defaults here ARE the tool's defaults: `SCVAESegmenter(extractor)` built in Python runs
exactly what `segtool segment photo.jpg` runs (docs/PIPELINE.md gives the measurements behind
each choice).
"""

from __future__ import annotations

from dataclasses import dataclass

from segtool.params import Flag, Number, OneOf, Text, Whole, WholeList, check_dataclass

CLUSTERINGS = ("kmeans", "spectral")            # how one image's cells are clustered
AFFINITIES = ("rbf", "knn", "cosine")           # spectral clustering's cell-to-cell affinity
RULES = ("simple", "geodesic", "scored")        # which clusters are foreground
REFINEMENTS = ("none", "grabcut")               # edge refinement of the upsampled mask
UPSAMPLINGS = ("bilinear", "guided", "superpixel")  # grid decision -> image resolution
VOTES = ("hard", "soft")                        # what each clustering gives a cell in the vote
CODE_TRANSFORMS = ("raw", "abs", "l2", "pca")   # what is done to the codes before clustering
EVAL_PROTOCOLS = ("iem", "native")  # the size x size crop, or each image at its own size
EVAL_SUBSETS = ("all", "selection", "held-out")  # which images of a split an evaluation scores


@dataclass
class ClusterSettings:
    """How a feature grid becomes a foreground mask.

    Parameters
    ----------
    k : int, default 4
        Clusters per image when `consensus` is empty.
    method : {"kmeans", "spectral"}, default "kmeans"
        The clustering algorithm (`--clustering` on the command line).
    affinity : {"rbf", "knn", "cosine"}, default "rbf"
        Spectral clustering's affinity; rbf's gamma is scaled by the median squared distance.
    gamma_scale : float > 0, default 1.0
        Multiplies that gamma.
    n_neighbors : int, default 10
        Neighbours of the knn affinity.
    rule : {"simple", "geodesic", "scored"}, default "scored"
        The foreground rule: boundary connectivity, its geodesic form, or the learnt cluster scorer.
    threshold : float or None, default None
        The rule's cut-off (None: the rule's own).
    geodesic_sigma : float > 0, default 2.0
        Colour scale of the geodesic rule.
    scorer : str, default ""
        The scored rule's scorer: a shipped name or a JSON path; "" = the segmenter's own.
    position_weight : float >= 0, default 1.0
        Weight of the cell position appended to the features before clustering.
    consensus : tuple of int, default (6, 8, 12)
        Several k: the clusterings that vote; () = one clustering at `k`. Chosen on the selection
        subsets of three kinds (bench/choose_method.py; docs/PIPELINE.md): finer than the (3, 4, 6, 8)
        chosen on flowers alone, which merged large objects with the border they touch (held-out
        lesions 65.2 against 61.4, flowers 72.6 against 72.9, scenes 52.9 against 52.5).
    upsample : {"bilinear", "guided", "superpixel"}, default "guided"
        From the grid to the image's resolution: edge-aware with a guided filter (the image as
        guide; on ecssd-dev at each image's own size: boundary F +9.0 points over bilinear, IoU
        level), plain bilinear, or the mean over SLIC superpixels; see segtool.pipeline.refine.
    saliency_weight : float in [0, 1], default 0.4
        Weight of RBD saliency (Zhu et al. 2014, segtool.pipeline.saliency) in the final map: the
        map is (1 - w) x the upsampled vote + w x the saliency centred on its Otsu threshold
        (0.5 + gain x (saliency - threshold), clipped to [0, 1]), then cut (mask_cut). A second
        opinion that fails differently from clustering: on the held-out scenes 52.5 IoU against
        48.6 without it (0 turns it off); chosen across kinds with the cut by
        bench/saliency_blend.py. A label-free rule (simple, geodesic) defaults to 0: the weight
        was chosen on labelled images. (The scorer's saliency cue is separate: it is weighed
        whatever this weight is.)
    saliency_gain : float > 0, default 1.0
        The gain of that centring.
    mask_cut : float in [0, 1] or "otsu", default "otsu"
        Where the final map (the upsampled vote, blended with saliency) is cut. "otsu": per image, at
        Otsu's threshold of the map (kept within [0.25, 0.6]), so that an object only some of the
        clusterings found is not cut away; at weight 0.4 on the held-out images, against a cut at
        1/2: scenes 52.5 against 46.7, flowers 72.9 against 73.0, lesions 61.4 against 61.3
        (bench/saliency_blend.py --cuts otsu,0.5). A number: that fixed cut (0.5: a majority).
        A label-free rule defaults to 0.5: it stays what it was.
    refine : {"none", "grabcut"}, default "none"
        Edge refinement of the mask at image resolution.
    fill_holes : bool, default True
        Fill background holes enclosed by foreground.
    min_part : float in [0, 1], default 0.02
        Drop foreground parts smaller than this fraction of the image.
    n_init : int, default 4
        K-means restarts.
    keep_variance : float in (0, 1], default 0.99
        Clustering runs on the fewest principal components of the image's features that keep this
        share of their variance (1: all of them, no projection). Pairwise distances barely move,
        and K-means on a 1024 x 261 code grid costs about a quarter as much at the ~55 components
        that keep 99%.
    seed : int, default 0
        Seed of the clustering.
    vote : {"hard", "soft"}, default "hard"
        What each clustering gives a cell in the vote: 1 or 0 (its cluster chosen or not), or,
        with the scored rule, its cluster's P(object) from the scorer ("soft"; other rules have
        no probability and vote hard). Soft was measured on the selection subsets and not taken:
        flowers -0.33 +- 0.25, scenes +1.03 +- 0.59, lesions -0.72 +- 0.45 per image
        (docs/PIPELINE.md).
    """

    k: int = 4
    method: str = "kmeans"
    affinity: str = "rbf"
    gamma_scale: float = 1.0
    n_neighbors: int = 10
    rule: str = "scored"
    threshold: float | None = None
    geodesic_sigma: float = 2.0
    scorer: str = ""
    position_weight: float = 1.0
    consensus: tuple[int, ...] = (6, 8, 12)
    upsample: str = "guided"
    saliency_weight: float = 0.4
    saliency_gain: float = 1.0
    mask_cut: float | str = "otsu"
    refine: str = "none"
    fill_holes: bool = True
    min_part: float = 0.02
    n_init: int = 4
    keep_variance: float = 0.99
    seed: int = 0
    vote: str = "hard"

    LIMITS = {
        "k": Whole(2, 100_000), "method": OneOf(CLUSTERINGS), "affinity": OneOf(AFFINITIES),
        "gamma_scale": Number(0, 1e6, above_low=True), "n_neighbors": Whole(1, 1000), "rule": OneOf(RULES),
        "threshold": Number(optional=True), "geodesic_sigma": Number(0, 1e6, above_low=True), "scorer": Text(),
        "position_weight": Number(0, 1e6), "consensus": WholeList(2, 100_000), "refine": OneOf(REFINEMENTS),
        "upsample": OneOf(UPSAMPLINGS), "saliency_weight": Number(0, 1),
        "saliency_gain": Number(0, 1e6, above_low=True), "mask_cut": Number(0, 1, word="otsu"),
        "fill_holes": Flag(), "min_part": Number(0, 1), "n_init": Whole(1, 100),
        "keep_variance": Number(0, 1, above_low=True), "seed": Whole(0, 2 ** 32 - 1),
        "vote": OneOf(VOTES),
    }

    def __post_init__(self) -> None:
        for k in (self.k, *(self.consensus if isinstance(self.consensus, (list, tuple)) else [self.consensus])):
            if isinstance(k, (int, float)) and not isinstance(k, bool) and k < 2:
                raise ValueError(f"k must be at least 2 (got {k}): one cluster cannot separate anything")
        check_dataclass(self, self.LIMITS)

    @property
    def ks(self) -> tuple[int, ...]:
        return self.consensus or (self.k,)


@dataclass
class CodeFeatureSettings:
    """What the SC-VAE pipeline clusters, besides position.

    Parameters
    ----------
    transform : {"raw", "abs", "l2", "pca"}, default "raw"
        Applied to the codes (see segtool.pipeline.features.transform_codes).
    pca_dims : int, default 16
        Dimensions kept by the pca transform.
    colour_weight : float >= 0, default 1.0
        Weight of standardised Lab colour appended to the standardised codes (0: codes only).
    smooth : int >= 0, default 0
        Box-filter radius over the grid before clustering.
    texture_weight : float >= 0, default 0
        Weight of the atom histogram block: for each cell, the share of cells in its
        (2 r + 1) x (2 r + 1) neighbourhood where each atom is active (standardised like the
        other blocks). A texture descriptor that colour cannot give (0: off). Off by default: on
        the selection subsets (flowers, scenes, lesions) weight 0.5 moved strict IoU by +0.0,
        +1.0 and +0.0 points, weight 1 by -0.6, +1.2 and +0.3 (docs/PIPELINE.md).
    texture_radius : int >= 1, default 2
        r of that neighbourhood, in cells.
    colour_view : float in [0, 1], default 0
        Share of the vote given to clusterings of the same grid on colour alone (the
        colour-pipeline's features, clusterings and scorer): the vote is (1 - w) x the codes'
        vote + w x colour's (0: codes only). Measured on the selection subsets and not taken: the
        mix lies between the codes and colour-pipeline, never ahead of colour (docs/PIPELINE.md).
    """

    transform: str = "raw"
    pca_dims: int = 16
    colour_weight: float = 1.0
    smooth: int = 0
    texture_weight: float = 0.0
    texture_radius: int = 2
    colour_view: float = 0.0

    LIMITS = {"transform": OneOf(CODE_TRANSFORMS), "pca_dims": Whole(1, 4096), "colour_weight": Number(0, 1e6),
              "smooth": Whole(0, 64), "texture_weight": Number(0, 1e6), "texture_radius": Whole(1, 64),
              "colour_view": Number(0, 1)}

    def __post_init__(self) -> None:
        check_dataclass(self, self.LIMITS)
