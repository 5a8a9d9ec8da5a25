"""Per-image cost of each segmentation stage, and what batching, the code cache and the shared
spectral embedding save. Figures are per-item times and ratios, so they compare across machines.

    .venv/bin/python bench/segment_speed.py [--model NAME|PATH] [--images 32]

Images are scikit-image's sample photos, cropped and resized to the eval protocol's 128x128.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def sample_images(n: int) -> list[np.ndarray]:
    from skimage import data

    from segtool.pipeline.features import resize_image

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        side = min(h, w) - 8 * (i // len(sources))  # slightly different crops: no two images alike
        top, left = (h - side) // 2, (w - side) // 2
        out.append(resize_image(np.ascontiguousarray(img[top:top + side, left:left + side]), 128, 128))
    return out


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def kmeans_one_run_at_a_time(features: np.ndarray, ks, n_init: int) -> dict[int, np.ndarray]:
    """segtool's K-means with each restart of each k run on its own, as it was before the runs were
    stepped together: the same seeds and iterations, so the same labels, one numpy call per run."""
    from segtool.pipeline import cluster

    x = np.asarray(features, dtype=np.float64)
    threshold = 1e-4 * float(np.mean(np.var(x, axis=0)))
    norms = (x * x).sum(axis=1)
    result = {}
    for k in ks:
        rng = np.random.default_rng(0)
        best, best_inertia = None, np.inf
        for _ in range(n_init):
            (seed,) = cluster._kmeans_plusplus_runs(x, k, rng, norms, 1)
            labels, inertia = cluster._lloyd_together(x, [seed], 300, threshold, norms)
            if inertia[0] < best_inertia:
                best, best_inertia = labels[0], inertia[0]
        result[k] = cluster._relabel_by_first_appearance(best)
    return result


def geodesic_one_hop_passes(features: np.ndarray) -> np.ndarray:
    """The geodesic cue's all-pairs distances as the release before computed them: every pass moves
    each distance one hop (shifted whole-grid minimums), until nothing moves. For comparison only."""
    from segtool.pipeline.foreground.geodesic_cue import TEXTURE, _steps

    h, w = features.shape[:2]
    across, down = (step.astype(np.float32) for step in _steps(features.reshape(h, w, -1), TEXTURE))
    n = h * w
    distance = np.full((n, h, w), np.inf, dtype=np.float32)
    distance.reshape(n, n)[np.arange(n), np.arange(n)] = 0.0
    while True:
        before = distance.copy()
        for _ in range(4):  # four passes between convergence checks, as it did
            np.minimum(distance[:, :, 1:], distance[:, :, :-1] + across, out=distance[:, :, 1:])
            np.minimum(distance[:, :, :-1], distance[:, :, 1:] + across, out=distance[:, :, :-1])
            np.minimum(distance[:, 1:, :], distance[:, :-1, :] + down, out=distance[:, 1:, :])
            np.minimum(distance[:, :-1, :], distance[:, 1:, :] + down, out=distance[:, :-1, :])
        if np.array_equal(distance, before):
            return distance.reshape(n, n).astype(np.float64)


def geodesic_sweeps_against_passes(images: list[np.ndarray]) -> None:
    from segtool.pipeline.features import colour_grid, standardise
    from segtool.pipeline.foreground.geodesic_cue import all_pairs_geodesic

    grids = [standardise(colour_grid(image, (16, 16))) for image in images]
    t_sweeps = timed(lambda: [all_pairs_geodesic(g) for g in grids], repeat=3)
    t_passes = timed(lambda: [geodesic_one_hop_passes(g) for g in grids], repeat=3)
    same = all(np.array_equal(all_pairs_geodesic(g), geodesic_one_hop_passes(g)) for g in grids)
    n = len(images)
    print(f"geodesic cue's all-pairs distances (16 x 16): sweeps {1000 * t_sweeps / n:5.1f} ms/image, one-hop passes "
          f"{1000 * t_passes / n:5.1f} ms/image ({t_passes / t_sweeps:.2f}x; same distances: {same})")


def stage_times(pipeline, images: list[np.ndarray], grabcut) -> None:
    """Each stage of an image's own work after the forward pass (what a worker thread runs), with
    BLAS at one thread as the workers hold it, beside GrabCut on the same images."""
    import segtool.pipeline.segmenters as segmenters
    from threadpoolctl import threadpool_limits

    grids = pipeline.feature_grids(images)
    spent: dict[str, float] = {}

    def clocked(name: str, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        return run

    pipeline.rbd_of = clocked("RBD saliency (SLIC, paths, solve)", pipeline.rbd_of)
    pipeline.geodesic_of = clocked("geodesic cue", pipeline.geodesic_of)
    pipeline.cluster = clocked("projection and K-means", pipeline.cluster)
    pipeline.full_resolution_mask = clocked("upsampling, blend, clean-up", pipeline.full_resolution_mask)
    select = segmenters.select_foreground
    segmenters.select_foreground = clocked("cluster cues and scorer", select)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            t0 = time.perf_counter()
            for image, grid in zip(images, grids):
                pipeline.finish(image, grid, time.perf_counter())
            whole = time.perf_counter() - t0
            t_gc = timed(lambda: [grabcut.segment(image) for image in images])
    finally:
        segmenters.select_foreground = select
        for name in ("rbd_of", "geodesic_of", "cluster", "full_resolution_mask"):
            del pipeline.__dict__[name]
    n = len(images)
    print(f"an image's own work after encoding, one thread: {1000 * whole / n:6.1f} ms/image "
          f"({whole / t_gc:.2f} x GrabCut's {1000 * t_gc / n:.1f} ms/image, same run)")
    for name, seconds in spent.items():
        print(f"  {name:36s} {1000 * seconds / n:6.1f} ms/image  ({seconds / t_gc:.2f} x GrabCut)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()

    import torch

    import scvae
    from segtool.pipeline.cluster import kmeans_labels_per_k, principal_projection, spectral_labels
    from segtool.pipeline.extract import CodeExtractor
    from segtool.pipeline.registry import default_pipeline
    from segtool.pipeline.segmenters import GrabCutSegmenter, SCVAESegmenter

    images = sample_images(args.images)
    n = len(images)
    model = scvae.load(args.model or scvae.DEFAULT_MODEL)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} images of 128x128 (model input 256x256)")

    single = CodeExtractor(model, batch_size=1)
    batched = CodeExtractor(model, batch_size=16)
    t_single = timed(lambda: single.extract(images))
    t_batched = timed(lambda: batched.extract(images))
    print(f"encode, batch 1:   {1000 * t_single / n:7.1f} ms/image")
    print(f"encode, batch 16:  {1000 * t_batched / n:7.1f} ms/image   ({t_single / t_batched:.2f}x faster)")

    with tempfile.TemporaryDirectory() as cache:
        cached = CodeExtractor(model, batch_size=16, cache_dir=cache)
        t_cold = timed(lambda: cached.extract(images))
        t_warm = timed(lambda: cached.extract(images))
    print(f"code cache: cold {1000 * t_cold / n:7.1f} ms/image, warm {1000 * t_warm / n:5.1f} ms/image "
          f"({t_cold / t_warm:.0f}x faster: sweeps over k or methods do not re-encode)")

    codes = batched.extract(images)
    feats = [z.reshape(-1, z.shape[-1]) for z in codes]
    t_shared = timed(lambda: [spectral_labels(f, [2, 3]) for f in feats])
    t_twice = timed(lambda: [(spectral_labels(f, 2), spectral_labels(f, 3)) for f in feats])
    print(f"spectral k=2 and 3: shared embedding {1000 * t_shared / n:6.1f} ms/image, "
          f"separately {1000 * t_twice / n:6.1f} ms/image ({t_twice / t_shared:.2f}x)")

    cluster, code_cfg = default_pipeline()
    pipeline = SCVAESegmenter(batched, cluster, code_cfg)
    grids = [principal_projection(g.reshape(-1, g.shape[-1]), cluster.keep_variance)
             for g in map(pipeline.with_position, pipeline.feature_grids(images))]
    t_together = timed(lambda: [kmeans_labels_per_k(g, cluster.ks, n_init=cluster.n_init) for g in grids], repeat=3)
    t_apart = timed(lambda: [kmeans_one_run_at_a_time(g, cluster.ks, cluster.n_init) for g in grids], repeat=3)
    same = all(np.array_equal(kmeans_labels_per_k(g, cluster.ks, n_init=cluster.n_init)[k],
                              kmeans_one_run_at_a_time(g, cluster.ks, cluster.n_init)[k]) for g in grids for k in cluster.ks)
    runs = len(cluster.ks) * cluster.n_init
    print(f"K-means of the vote ({runs} runs on the default's projected grids): all runs together "
          f"{1000 * t_together / n:6.1f} ms/image, one run at a time {1000 * t_apart / n:6.1f} ms/image "
          f"({t_apart / t_together:.2f}x; same labels: {same})")
    t_pipe = timed(lambda: pipeline.segment_batch(images))
    label_free = type(cluster)(**{**cluster.__dict__, "rule": "simple", "consensus": (2, 3, 4), "refine": "grabcut"})
    t_free = timed(lambda: SCVAESegmenter(batched, label_free, code_cfg).segment_batch(images))
    grabcut = GrabCutSegmenter()
    t_gc = timed(lambda: grabcut.segment_batch(images))
    ks = ", ".join(map(str, cluster.ks))
    print(f"default pipeline (encode + K-means at k = {ks} + cluster scorer): {1000 * t_pipe / n:6.1f} ms/image")
    print(f"  of which after encoding: {1000 * (t_pipe - t_batched) / n:6.1f} ms/image; label-free rule with "
          f"GrabCut (k = 2, 3, 4): {1000 * t_free / n:6.1f} ms/image; GrabCut baseline: {1000 * t_gc / n:6.1f} ms/image")
    stage_times(pipeline, images, grabcut)
    geodesic_sweeps_against_passes(images)

if __name__ == "__main__":
    main()
