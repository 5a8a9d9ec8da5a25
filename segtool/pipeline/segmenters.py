"""One `Segmenter` interface for the SC-VAE pipeline and the classical baselines.

A segmenter is configured in `__init__` and segments RGB uint8 images (H x W x 3) into
boolean foreground masks at the image's own size. Grid-clustering segmenters share one
pipeline: feature grid -> clusters (spectral or K-means) -> a foreground rule (boundary
connectivity, or the cluster scorer) picks the foreground clusters -> upsampling -> optional refinement. Only the features differ, which is
what makes the comparison between codes and colour an honest ablation.

Add a method by subclassing `Segmenter` (or `GridClusterSegmenter`) and naming it in
`segtool.pipeline.registry`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
import numpy as np

from segtool.pipeline.cluster import kmeans_labels_per_k, principal_projection, spectral_labels
from segtool.pipeline.features import atom_histograms, colour_grid, position_grid, standardise, transform_codes
from segtool.pipeline.foreground.rules import select_foreground
from segtool.params import Flag, Number, Whole, check_params
from segtool.settings import ClusterSettings, CodeFeatureSettings
from segtool.pipeline.refine import clean_mask, map_cut, refine_mask, upsample_mask, upsample_votes



@dataclass
class SegmentResult:
    mask: np.ndarray                       # bool [H, W] at the input image's size
    labels: np.ndarray | None = None       # cluster id per grid cell [h, w]
    grid_mask: np.ndarray | None = None    # foreground per grid cell [h, w]
    foreground_clusters: list[int] = field(default_factory=list)
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    cluster_scores: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def foreground_fraction(self) -> float:
        return float(self.mask.mean())

    def summary(self) -> dict:
        return {"foreground_fraction": round(self.foreground_fraction, 4),
                "foreground_clusters": self.foreground_clusters,
                "cluster_sizes": {str(k): v for k, v in self.cluster_sizes.items()},
                # lower = more object-like: border contact for the simple rule, P(background) for the scored one
                "cluster_scores": {str(k): round(v, 4) for k, v in self.cluster_scores.items()},
                "seconds": round(self.seconds, 4)}


class Segmenter:
    """Base class: override `segment` (or `segment_batch` when batching pays, as for a model)."""

    name = "segmenter"
    # Images of a batch segmented at once, one per thread (segtool.pipeline.parallel). One for a
    # subclass unless it is set: `segment` must be safe to call from several threads. The built-in
    # methods are, and build_segmenter sets it.
    workers: int = 1

    def segment(self, image: np.ndarray) -> SegmentResult:
        raise NotImplementedError

    def segment_batch(self, images: list[np.ndarray]) -> list[SegmentResult]:
        return list(self.iter_batch(images))

    def iter_batch(self, images: list[np.ndarray]):
        """The results one at a time, in order, as each is ready (a caller can write and report per image)."""
        if type(self).segment_batch is Segmenter.segment_batch:
            from segtool.pipeline.parallel import map_in_order

            yield from map_in_order(self.segment, images, self.workers)
        else:  # a subclass batches its own way: its results come together
            yield from self.segment_batch(images)

    def settings(self) -> dict:
        return {}

    def grid_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The h x w grid this segmenter clusters for an image of this size; None when it clusters
        no grid (GrabCut, ellipse, RBD). Used to refuse a k larger than the grid before any work."""
        return None


WORK_PIXELS = 2_000_000  # the largest image the mask is finished on (see full_resolution_mask)


class GridClusterSegmenter(Segmenter):
    """The shared pipeline; subclasses provide `feature_grids`."""

    def __init__(self, settings: ClusterSettings | None = None):
        self.cfg = settings or ClusterSettings()
        self.scorer_uses_saliency = self.scorer_uses_geodesic = False
        if self.cfg.rule == "scored":
            from segtool.pipeline.foreground.scorer import load_scorer_cached

            # A bad scorer fails here, before any work.
            scorer = load_scorer_cached(self.cfg.scorer or self.name)
            self.scorer_uses_saliency, self.scorer_uses_geodesic = scorer.uses_saliency, scorer.uses_geodesic

    def feature_grids(self, images: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def settings(self) -> dict:
        return asdict(self.cfg)

    def cluster(self, features: np.ndarray, ks: tuple[int, ...] | None = None) -> dict[int, np.ndarray]:
        """Label grids [h, w] for each k (one spectral embedding serves every k)."""
        h, w, c = features.shape
        ks = ks or self.cfg.ks
        if max(ks) > h * w:
            raise ValueError(f"k = {max(ks)} clusters is more than the {h}x{w} = {h * w} cells of the grid")
        flat = principal_projection(features.reshape(h * w, c), self.cfg.keep_variance)
        if self.cfg.method == "kmeans":
            labels = kmeans_labels_per_k(flat, ks, seed=self.cfg.seed, n_init=self.cfg.n_init)
        else:
            labels = spectral_labels(flat, list(ks), affinity=self.cfg.affinity, seed=self.cfg.seed,
                                     gamma_scale=self.cfg.gamma_scale, n_neighbors=self.cfg.n_neighbors)
        return {k: v.reshape(h, w) for k, v in labels.items()}

    def with_position(self, features: np.ndarray) -> np.ndarray:
        if self.cfg.position_weight <= 0:
            return features
        pos = position_grid(*features.shape[:2]) * self.cfg.position_weight
        return np.concatenate([features, pos], axis=-1)

    def needs_rbd(self) -> bool:
        """Whether segmenting computes the image's RBD saliency: for the blend, or for the scorer's cue."""
        return self.cfg.saliency_weight > 0 or self.scorer_uses_saliency

    def rbd_of(self, image: np.ndarray, copy: np.ndarray | None = None):
        """The image's RBD saliency (segtool.pipeline.saliency), computed once for the scorer's cue
        and the blend; `copy`: the image's cue_work_copy when the caller already has it."""
        from segtool.pipeline.saliency import cue_work_copy, rbd

        return rbd(copy if copy is not None else cue_work_copy(image))

    def geodesic_of(self, image: np.ndarray, grid: tuple[int, int], copy: np.ndarray | None = None) -> np.ndarray | None:
        """The image's geodesic objectness per cell of the grid when the scorer weighs it, else
        None; read, as RBD is, from a copy of at most about 128 x 128 pixels, smoothed when noisy
        (`copy`: that cue_work_copy when the caller already has it)."""
        if not self.scorer_uses_geodesic:
            return None
        from segtool.pipeline.foreground.geodesic_cue import geodesic_objectness_grid
        from segtool.pipeline.saliency import cue_work_copy

        return geodesic_objectness_grid(copy if copy is not None else cue_work_copy(image), *grid)

    def vote(self, features: np.ndarray, rbd=None, geodesic=None, scorer: str | None = None) -> tuple[dict, dict, np.ndarray]:
        """The clusterings of a feature grid (per k), the foreground choice of each, and the grid of
        votes: the fraction of clusterings that call each cell foreground (0 or 1 with one k; with
        vote="soft", the mean P(object) of the cell's clusters). `rbd` (rbd_of the image) is needed
        when the scorer weighs saliency, `geodesic` (geodesic_of the image) when it weighs the
        geodesic cue. `scorer`: another scorer than the segmenter's (for a second view's features)."""
        all_labels = self.cluster(self.with_position(features))
        scorer = scorer or self.cfg.scorer or self.name
        saliency = None
        if self.scorer_uses_saliency:
            from segtool.pipeline.saliency import saliency_cue_grid

            if rbd is None:
                raise ValueError(f"the cluster scorer {scorer!r} weighs saliency: pass the image's RBD")
            saliency = saliency_cue_grid(rbd, *features.shape[:2])
        if self.scorer_uses_geodesic and geodesic is None:
            raise ValueError(f"the cluster scorer {scorer!r} weighs the geodesic cue: pass the image's geodesic grid")
        choices = {k: select_foreground(labels, self.cfg.rule, self.cfg.threshold, features=features,
                                        sigma=self.cfg.geodesic_sigma, scorer=scorer, saliency=saliency,
                                        geodesic=geodesic)
                   for k, labels in all_labels.items()}
        if self.cfg.vote == "soft" and self.cfg.rule == "scored":  # each cell: its cluster's P(object)
            probabilities = [1.0 - np.vectorize(choices[k].cluster_scores.__getitem__, otypes=[float])(labels)
                             for k, labels in all_labels.items()]
            return all_labels, choices, np.mean(probabilities, axis=0)
        return all_labels, choices, np.mean([c.mask for c in choices.values()], axis=0)

    def votes_of(self, image: np.ndarray, features: np.ndarray, rbd, geodesic) -> tuple[dict, dict, np.ndarray]:
        """The vote of the image's feature grid (a subclass may add other views of the image)."""
        return self.vote(features, rbd, geodesic)

    def finish(self, image: np.ndarray, features: np.ndarray, started: float) -> SegmentResult:
        copy = None
        if self.needs_rbd() or self.scorer_uses_geodesic:  # both pixel cues read one copy: made once
            from segtool.pipeline.saliency import cue_work_copy

            copy = cue_work_copy(image)
        rbd = self.rbd_of(image, copy) if self.needs_rbd() else None
        all_labels, choices, votes = self.votes_of(image, features, rbd, self.geodesic_of(image, features.shape[:2], copy))
        mask = self.full_resolution_mask(image, votes, rbd)
        # The cluster map shows the clustering at k (or the middle one of a consensus).
        shown = self.cfg.k if self.cfg.k in all_labels else sorted(all_labels)[len(all_labels) // 2]
        labels, choice = all_labels[shown], choices[shown]
        sizes = {int(c): int((labels == c).sum()) for c in np.unique(labels)}
        return SegmentResult(mask, labels, votes > 0.5, choice.foreground_clusters, sizes, choice.cluster_scores,
                             time.perf_counter() - started)

    def full_resolution_mask(self, image: np.ndarray, votes: np.ndarray, rbd=None) -> np.ndarray:
        """Upsampling, refinement and clean-up of the grid's votes, on a copy of the image of at most
        WORK_PIXELS (then enlarged): a mask from a 32 x 32 grid gains nothing from 24 megapixels,
        and hole filling, GrabCut or the guided filter at that size cost seconds and gigabytes.
        `rbd` is the image's RBD saliency when already computed (rbd_of)."""
        from segtool.pipeline.features import resize_image, shrink_to_pixels

        height, width = image.shape[:2]
        work = shrink_to_pixels(image, WORK_PIXELS)
        blend = self.cfg.saliency_weight > 0
        if not blend and self.cfg.mask_cut == 0.5:
            # The majority of the clusterings (a tied vote counts as foreground on the bilinear map).
            mask = upsample_mask(votes, *work.shape[:2], image=work, method=self.cfg.upsample)
        else:
            soft = upsample_votes(votes, *work.shape[:2], image=work, method=self.cfg.upsample)
            if blend:
                from segtool.pipeline.saliency import vote_from_rbd

                w = self.cfg.saliency_weight
                rbd = rbd if rbd is not None else self.rbd_of(image)
                soft = (1 - w) * soft + w * vote_from_rbd(rbd, *work.shape[:2], self.cfg.saliency_gain)
            mask = soft > map_cut(soft, self.cfg.mask_cut)
        mask = refine_mask(work, mask, self.cfg.refine)
        mask = clean_mask(mask, self.cfg.fill_holes, self.cfg.min_part)
        if work is not image:
            mask = resize_image(mask.astype(np.uint8) * 255, width, height) > 127
        return mask

    def iter_batch(self, images: list[np.ndarray]):
        """Features for the whole batch (one forward pass of a model), then each image's result as
        soon as it is clustered."""
        from segtool.pipeline.parallel import map_in_order

        started = time.perf_counter()
        grids = self.feature_grids(images)
        shared = (time.perf_counter() - started) / max(1, len(images))  # feature time, spread evenly

        def finish(pair):  # each image's own time, from when its thread takes it
            return self.finish(*pair, time.perf_counter() - shared)

        yield from map_in_order(finish, zip(images, grids), self.workers)

    def segment(self, image: np.ndarray) -> SegmentResult:
        return self.segment_batch([image])[0]


class ColourSegmenter(GridClusterSegmenter):
    """Colour clustering: mean Lab per cell of a 32x32 grid (+ position), raw Lab units.

    Parameters
    ----------
    settings : ClusterSettings, optional
        Default: `ColourSegmenter.default_settings()` (K-means at k = 3, position x 20,
        boundary connectivity, bilinear upsampling).
    grid : int, default 32
        Cells per side."""

    name = "colour"

    @staticmethod
    def default_settings() -> ClusterSettings:
        """The classical baseline: one K-means at k = 3, position weighted 20, boundary connectivity."""
        return ClusterSettings(k=3, method="kmeans", position_weight=20.0, consensus=(), rule="simple",
                               upsample="bilinear", saliency_weight=0.0, mask_cut=0.5, refine="none",
                               fill_holes=False, min_part=0.0)

    def __init__(self, settings: ClusterSettings | None = None, grid: int = 32):
        super().__init__(settings or self.default_settings())
        self.grid = Whole(4, 512).check("grid", grid)

    def feature_grids(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [colour_grid(image, (self.grid, self.grid)) for image in images]

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        return self.grid, self.grid


class SCVAESegmenter(GridClusterSegmenter):
    """The SC-VAE pipeline: clustering of each image's sparse-code grid.

    Parameters
    ----------
    extractor : CodeExtractor or LazyExtractor
        Turns images into code grids [h, w, K] (segtool.pipeline.extract; `load_extractor()`
        gives the shipped model's).
    settings : ClusterSettings, optional
        Clustering, foreground rule and clean-up; the default is the tool's default.
    features : CodeFeatureSettings, optional
        What is clustered besides position (codes, colour weight); the default is the tool's.
    """

    name = "scvae"

    def __init__(self, extractor, settings: ClusterSettings | None = None,
                 features: CodeFeatureSettings | None = None):
        super().__init__(settings)
        self.extractor = extractor
        self.code_cfg = features or CodeFeatureSettings()
        if self.code_cfg.colour_view > 0 and self.cfg.rule == "scored":
            from segtool.pipeline.foreground.scorer import load_scorer_cached

            # The colour view's scorer may weigh cues the codes' scorer does not: compute them too.
            colour_scorer = load_scorer_cached(PipelineColourSegmenter.name)
            self.scorer_uses_saliency |= colour_scorer.uses_saliency
            self.scorer_uses_geodesic |= colour_scorer.uses_geodesic

    def settings(self) -> dict:
        return {**asdict(self.cfg), **{f"codes_{k}": v for k, v in asdict(self.code_cfg).items()}}

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        # The grid follows the model's downsampling: this loads the model.
        extractor = self.extractor.get() if hasattr(self.extractor, "get") else self.extractor
        h, w = extractor.input_size(height, width)
        return h // extractor.factor, w // extractor.factor

    def features_from_codes(self, image: np.ndarray, codes: np.ndarray, transform: str | None = None) -> np.ndarray:
        feats = standardise(transform_codes(codes, transform or self.code_cfg.transform, self.code_cfg.pca_dims))
        if self.code_cfg.texture_weight > 0 and transform is None:  # codes, not colour standing in for them
            texture = standardise(atom_histograms(codes, self.code_cfg.texture_radius)) * self.code_cfg.texture_weight
            feats = np.concatenate([feats, texture], axis=-1)
        if self.code_cfg.colour_weight > 0:
            colour = standardise(colour_grid(image, codes.shape[:2])) * self.code_cfg.colour_weight
            feats = np.concatenate([feats, colour], axis=-1)
        if self.code_cfg.smooth > 0:
            from scipy.ndimage import uniform_filter

            r = self.code_cfg.smooth
            feats = uniform_filter(feats, size=(2 * r + 1, 2 * r + 1, 1), mode="reflect")
        return feats

    def feature_grids(self, images: list[np.ndarray]) -> list[np.ndarray]:
        codes = self.extractor.extract(images)
        return [self.features_from_codes(image, z) for image, z in zip(images, codes)]

    def colour_features(self, image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """What the colour-pipeline clusters on this grid: standardised Lab standing in for the codes."""
        return self.features_from_codes(image, standardise(colour_grid(image, grid)), transform="raw")

    def votes_of(self, image: np.ndarray, features: np.ndarray, rbd, geodesic) -> tuple[dict, dict, np.ndarray]:
        all_labels, choices, votes = self.vote(features, rbd, geodesic)
        w = self.code_cfg.colour_view
        if w > 0:  # the same vote on colour alone, scored by the colour pipeline's own scorer
            colour = self.colour_features(image, features.shape[:2])
            _, _, colour_votes = self.vote(colour, rbd, geodesic, scorer=PipelineColourSegmenter.name)
            votes = (1 - w) * votes + w * colour_votes
        return all_labels, choices, votes


class PipelineColourSegmenter(SCVAESegmenter):
    """The SC-VAE pipeline with Lab colour in place of the codes, on the grid the model would
    give: everything but the features is shared, so the difference is what the codes add.

    Parameters
    ----------
    settings, features : as for SCVAESegmenter (the colour weight is unused: colour is the feature).
    input_side : int, default 256
        The side the model would see (the grid is input_side / factor cells).
    factor : int, default 8
        The model's downsampling, 2^d."""

    name = "colour-pipeline"

    def __init__(self, settings: ClusterSettings | None = None, features: CodeFeatureSettings | None = None,
                 input_side: int = 256, factor: int = 8):
        super().__init__(None, settings, features)
        self.input_side, self.factor = input_side, factor

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        from segtool.pipeline.extract import model_input_size

        h, w = model_input_size(height, width, side=self.input_side, multiple=self.factor)
        return h // self.factor, w // self.factor

    def feature_grids(self, images: list[np.ndarray]) -> list[np.ndarray]:
        from segtool.pipeline.extract import model_input_size

        grids = []
        for image in images:
            h, w = model_input_size(*image.shape[:2], side=self.input_side, multiple=self.factor)
            grids.append(self.colour_features(image, (h // self.factor, w // self.factor)))
        return grids


class GrabCutSegmenter(Segmenter):
    """OpenCV GrabCut initialised with a centred rectangle inset `inset` of each side.

    Parameters
    ----------
    inset : float in [0, 0.45], default 0.1
        Fraction of each side left outside the initial rectangle.
    iterations : int in [1, 100], default 5
        GrabCut iterations."""

    name = "grabcut"

    def __init__(self, inset: float = 0.1, iterations: int = 5):
        values = check_params({"inset": Number(0, 0.45), "iterations": Whole(1, 100)},
                              {"inset": inset, "iterations": iterations}, "grabcut")
        self.inset = values["inset"]
        self.iterations = values["iterations"]

    def settings(self) -> dict:
        return {"inset": self.inset, "iterations": self.iterations}

    def segment(self, image: np.ndarray) -> SegmentResult:
        import cv2

        started = time.perf_counter()
        h, w = image.shape[:2]
        x0, y0 = int(round(self.inset * w)), int(round(self.inset * h))
        rect = (x0, y0, max(1, w - 2 * x0), max(1, h - 2 * y0))
        gc = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # deterministic GMM initialisation, whatever ran before
        try:
            cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), gc, rect, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
            mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        except cv2.error:
            mask = np.zeros((h, w), bool)  # too small or flat for GrabCut's colour models
        # An empty result is left empty: that is what the method gives.
        return SegmentResult(mask, seconds=time.perf_counter() - started)


class EllipseSegmenter(Segmenter):
    """A centred ellipse with semi-axes `scale` x half the image: the centre prior alone, with
    no look at the pixels (0.7 covers 38% of the image)."""

    name = "ellipse"

    def __init__(self, scale: float = 0.7):
        self.scale = check_params({"scale": Number(0, 1, above_low=True)}, {"scale": scale}, "ellipse")["scale"]

    def settings(self) -> dict:
        return {"scale": self.scale}

    def segment(self, image: np.ndarray) -> SegmentResult:
        h, w = image.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w]
        rx, ry = self.scale * w / 2, self.scale * h / 2
        mask = ((xs + 0.5 - w / 2) / rx) ** 2 + ((ys + 0.5 - h / 2) / ry) ** 2 <= 1
        return SegmentResult(mask)


RBD_LIMITS = {"n_segments": Whole(10, 5000), "compactness": Number(0, None, above_low=True), "link_boundary": Flag(),
              "sigma_clr": Number(0, None, above_low=True), "sigma_bndcon": Number(0, None, above_low=True),
              "sigma_spa": Number(0, None, above_low=True), "mu": Number(0, None)}


class RBDSegmenter(Segmenter):
    """Robust background detection saliency (Zhu et al., CVPR 2014) over SLIC superpixels,
    thresholded with Otsu (segtool.pipeline.saliency). `link_boundary` joins the border superpixels into
    one region for the geodesic distances, as in the paper; the sigmas and mu are the paper's."""

    name = "rbd"

    def __init__(self, n_segments: int = 200, compactness: float = 10.0, link_boundary: bool = True,
                 sigma_clr: float = 10.0, sigma_bndcon: float = 1.0, sigma_spa: float = 0.25, mu: float = 0.1):
        values = check_params(RBD_LIMITS, {"n_segments": n_segments, "compactness": compactness,
                                           "link_boundary": link_boundary, "sigma_clr": sigma_clr,
                                           "sigma_bndcon": sigma_bndcon, "sigma_spa": sigma_spa, "mu": mu}, "rbd")
        self.n_segments = values["n_segments"]
        self.compactness = values["compactness"]
        self.link_boundary = values["link_boundary"]
        self.sigma_clr = values["sigma_clr"]
        self.sigma_bndcon = values["sigma_bndcon"]
        self.sigma_spa = values["sigma_spa"]
        self.mu = values["mu"]

    def settings(self) -> dict:
        return {"n_segments": self.n_segments, "compactness": self.compactness, "link_boundary": self.link_boundary,
                "sigma_clr": self.sigma_clr, "sigma_bndcon": self.sigma_bndcon, "sigma_spa": self.sigma_spa,
                "mu": self.mu}

    def segment(self, image: np.ndarray) -> SegmentResult:
        from segtool.pipeline.saliency import rbd_mask

        started = time.perf_counter()
        mask = rbd_mask(image, **self.settings())
        return SegmentResult(mask, seconds=time.perf_counter() - started)
