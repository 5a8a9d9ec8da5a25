"""Choosing the weight of RBD saliency in the pipeline's final map, across kinds of images.

    .venv/bin/python bench/saliency_blend.py folder:SET_A folder:SET_B ... [--method scvae]
        [--weights 0,0.2,...] [--gains 1,2,4] [--cuts 0.5]

For every image of every set (the eval protocol's 128x128 crop) it computes once the method's
upsampled vote map and RBD saliency, then scores every (weight, gain, cut) of the blend
    mask = (1 - weight) x votes + weight x clip(0.5 + gain x (saliency - Otsu threshold), 0, 1) > cut
(then the pipeline's clean-up), and prints:
- strict IoU per set on the selection subsets (index % 3 == 0) and the held-out images;
- the pair chosen on the selection subsets of all sets together (the mean over sets), its
  held-out IoU per set and the paired per-image difference against weight 0;
- leave one kind out: for each set, the pair chosen on the other sets' selection subsets, scored
  on that set's held-out images.
The shipped default (segtool.settings.ClusterSettings) takes the pair chosen on all sets. With
--incumbent W,G (the shipped pair) a challenger must lead it on the selection subsets by more
than two standard errors of the per-image difference (the mean over sets); a tie keeps it, in
every choice including leave one kind out.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np


def parse_floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def parse_cuts(text: str) -> list[float | str]:
    """Cuts of the final map, as the pipeline's mask_cut takes them: numbers, or otsu (each image's own)."""
    return ["otsu" if v.strip().lower() == "otsu" else float(v) for v in text.split(",") if v.strip()]


def cut_text(cut: float | str) -> str:
    return cut if isinstance(cut, str) else f"{cut:g}"


def collect(spec: str, method: str):
    """(index, soft vote map, RBD result, truth) for every image of a set, the pipeline's settings
    as shipped but without the blend."""
    from segtool.data.readers import open_dataset
    from segtool.evaluation.protocol import iem_crop
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.refine import upsample_votes
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.pipeline.saliency import rbd_on_work_copy

    reader = open_dataset(spec)
    spec_ = parse_method(method)  # a method with its own settings, e.g. scvae[threshold=0.4], is taken as given
    spec_.overrides["saliency_weight"] = 0
    segmenter = build_segmenter(spec_, extractor_factory=lambda: load_extractor(None, cache=True))
    samples = reader.samples()
    items = []
    for start in range(0, len(samples), 32):
        batch = samples[start:start + 32]
        crops = [iem_crop(*reader.load(s), 128, "bilinear") for s in batch]
        grids = segmenter.feature_grids([image for image, _ in crops])
        for offset, ((image, truth), features) in enumerate(zip(crops, grids)):
            rbd = rbd_on_work_copy(image)  # the scorer's saliency cue and the blend share it, as in the pipeline
            _, _, votes = segmenter.vote(features, rbd, segmenter.geodesic_of(image, features.shape[:2]))
            soft = upsample_votes(votes, *image.shape[:2], image=image, method=segmenter.cfg.upsample)
            items.append((start + offset, soft, rbd, truth.astype(bool)))
        print(f"  {reader.name}: {len(items)}/{len(samples)}", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    return reader.name, segmenter.cfg, items


def collected_sets(specs: list[str], method: str, cache: str | None):
    """collect() for every set, read from `cache` when it was written for the same method, sets and
    scorer file (the vote maps depend on them), written there otherwise."""
    import hashlib
    import pickle

    from segtool.errors import SegtoolError
    from segtool.resources import read_resource

    from segtool.pipeline.registry import parse_method

    spec = parse_method(method)
    scorer_text = read_resource("scorer", spec.overrides.get("scorer", spec.name), SegtoolError)[0]
    key = (method, tuple(specs), hashlib.sha256(scorer_text.encode()).hexdigest())
    if cache and Path(cache).is_file():
        stored = pickle.loads(Path(cache).read_bytes())
        if stored["key"] == key:
            return stored["sets"]
    sets = [collect(spec, method) for spec in specs]
    if cache:
        Path(cache).write_bytes(pickle.dumps({"key": key, "sets": sets}))
    return sets


def blend_scores(items, cfg, weight: float, gain: float, cut: float | str = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(image indices, strict IoU per image) of the blend at (weight, gain), cut at `cut` (a number, or
    otsu: each map at its own Otsu threshold, as the pipeline's mask_cut)."""
    from segtool.pipeline.refine import clean_mask, map_cut
    from segtool.pipeline.saliency import vote_from_rbd

    indices, scores = [], []
    for index, soft, result, truth in items:
        blended = soft if weight == 0 else (1 - weight) * soft + weight * vote_from_rbd(result, *soft.shape, gain)
        mask = clean_mask(blended > map_cut(blended, cut), cfg.fill_holes, cfg.min_part)
        union = (mask | truth).sum()
        indices.append(index)
        scores.append((mask & truth).sum() / union if union else 1.0)
    return np.array(indices), np.array(scores)


def selection_lead(scores: dict, among: list[str], setting, other) -> tuple[float, float]:
    """How far `setting` leads `other` on the selection subsets of the sets `among`: the mean over
    sets of the per-image difference, and its standard error."""
    diffs = [scores[n, setting][0] - scores[n, other][0] for n in among]
    lead = float(np.mean([d.mean() for d in diffs]))
    return lead, math.sqrt(sum(d.var(ddof=1) / len(d) for d in diffs)) / len(diffs)


def choose_setting(pairs: list[tuple], scores: dict, among: list[str], incumbent: tuple | None = None,
                   no_loss: bool = False) -> tuple:
    """The best setting on the selection subsets of the sets `among` (the mean over sets of their
    mean IoU; scores[set, setting] = (selection IoUs, held-out IoUs) per image). With an incumbent,
    a challenger must lead it by more than two standard errors of the per-image difference, and
    with `no_loss` also trail it on no single set by more than two; the incumbent stays otherwise."""
    def selection_mean(pair):
        return float(np.mean([scores[n, pair][0].mean() for n in among]))

    def beats_incumbent(pair) -> bool:
        lead, se = selection_lead(scores, among, pair, incumbent)
        if lead <= 2 * se:
            return False
        diffs = [scores[n, pair][0] - scores[n, incumbent][0] for n in among]
        return not no_loss or all(d.mean() >= -2 * d.std(ddof=1) / math.sqrt(len(d)) for d in diffs)

    ranked = sorted(pairs, key=lambda pair: -selection_mean(pair))  # stable: the first of equals wins
    if incumbent is None:
        return ranked[0]
    for pair in ranked:
        if pair == incumbent or beats_incumbent(pair):
            return pair
    return incumbent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH of labelled sets (images/ + masks/)")
    parser.add_argument("--method", default="scvae", help="scvae or colour-pipeline")
    parser.add_argument("--weights", default="0,0.2,0.3,0.4,0.5,0.6,0.7,1")
    parser.add_argument("--gains", default="1,2,4")
    parser.add_argument("--cuts", default="0.5", help="where the blended map is cut, as the pipeline's mask_cut: "
                                                       "numbers, or otsu (each image's own Otsu threshold)")
    parser.add_argument("--incumbent", default=None, metavar="W,G[,CUT]",
                        help="the shipped pair: another replaces it only when ahead on the selection subsets by "
                             "more than two standard errors of the per-image difference (a tie keeps it)")
    parser.add_argument("--no-loss", action="store_true",
                        help="a challenger must also not fall behind the incumbent on any one set by more than two "
                             "standard errors: a gain on some kinds may not be paid for by another")
    parser.add_argument("--items-cache", default=None, metavar="FILE",
                        help="keep the collected vote maps and RBD results here, to try other grids without "
                             "recomputing them (rebuilt when the method, the sets or the shipped scorer change)")
    parser.add_argument("--json", default=None, help="also write the chosen pairs here (leave_one_kind_out.py "
                                                     "--fold-overrides reads the per-set ones)")
    args = parser.parse_args()
    pairs = [(w, g, c) for w in parse_floats(args.weights) for g in ([1.0] if w == 0 else parse_floats(args.gains))
             for c in parse_cuts(args.cuts)]
    incumbent = None
    if args.incumbent:
        w, g, *cut = args.incumbent.split(",")
        incumbent = (float(w), float(g), parse_cuts(cut[0])[0] if cut else 0.5)
        if incumbent not in pairs:
            sys.exit(f"saliency_blend: --incumbent {args.incumbent}: not among the weights, gains and cuts tried")
    sets = collected_sets(args.datasets, args.method, args.items_cache)
    names = [name for name, _, _ in sets]
    scores = {}
    for name, cfg, items in sets:
        for pair in pairs:
            indices, iou = blend_scores(items, cfg, *pair)
            scores[name, pair] = (iou[indices % 3 == 0], iou[indices % 3 != 0])

    def choose(among) -> tuple:
        return choose_setting(pairs, scores, among, incumbent, args.no_loss)

    print(f"{args.method}: strict IoU (%), selection subsets | held-out images")
    print(f"{'weight':>6} {'gain':>5} {'cut':>5}  " + "  ".join(f"{n[:14]:>14}" for n in names) + "  |  "
          + "  ".join(f"{n[:14]:>14}" for n in names))
    for pair in pairs:
        print(f"{pair[0]:6.2f} {pair[1]:5.1f} {cut_text(pair[2]):>5}  " + "  ".join(f"{100 * scores[n, pair][0].mean():14.1f}" for n in names)
              + "  |  " + "  ".join(f"{100 * scores[n, pair][1].mean():14.1f}" for n in names))
    chosen = choose(names)
    if incumbent is not None:
        best = choose_setting(pairs, scores, names)  # the plain best, no incumbent to beat
        print(f"\nbest on the selection subsets: weight {best[0]:g}, gain {best[1]:g}, cut {cut_text(best[2])}"
              + ("" if best == chosen else "; it does not beat the incumbent as the rule asks"))
    base = incumbent or pairs[0]  # the per-image differences below are against the incumbent when there is one
    print(f"\nchosen on the selection subsets of all {len(names)} sets: weight {chosen[0]:g}, gain {chosen[1]:g}, "
          f"cut {cut_text(chosen[2])}")
    for name in names:
        diff = scores[name, chosen][1] - scores[name, base][1]
        print(f"  {name}: held-out {100 * scores[name, chosen][1].mean():.1f} (weight {base[0]:g}, cut {cut_text(base[2])}: "
              f"{100 * scores[name, base][1].mean():.1f}), per image {100 * diff.mean():+.2f} +- "
              f"{100 * diff.std(ddof=1) / math.sqrt(len(diff)):.2f}")
    without = {}
    if len(names) > 1:
        print("leave one kind out (chosen without the set, scored on its held-out images):")
        for name in names:
            others = [n for n in names if n != name]
            pair = choose(others)
            without[name] = {"saliency_weight": pair[0], "saliency_gain": pair[1], "mask_cut": pair[2]}
            print(f"  {name}: weight {pair[0]:g}, gain {pair[1]:g}, cut {cut_text(pair[2])} -> {100 * scores[name, pair][1].mean():.1f}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "method": args.method, "chosen": {"saliency_weight": chosen[0], "saliency_gain": chosen[1],
                                                 "mask_cut": chosen[2]},
            "leave_one_kind_out": without,
            "held_out_iou": {n: float(scores[n, chosen][1].mean()) for n in names}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
