"""Leave one kind out: how the default does on a kind of image its scorer never saw.

For each set given, the cluster scorer is fit on the selection subsets of the *other* sets
(bench/fit_cluster_scorer.py, each set weighing the same) and the pipeline is scored on the
held-out images (index % 3 != 0) of the set left out. Beside it: the same pipeline with the
scorer fit on all the sets (the shipped way), on the same images. The leave-one-kind-out figure
forecasts what a user's unseen kind of image gets; the gap between the two is how much of the
in-suite figure comes from having seen the kind.

    .venv/bin/python bench/leave_one_kind_out.py folder:../shared/data/oxford17-flowers-seg \\
        folder:../shared/data/ecssd-dev folder:../shared/data/isic-lesions-128 \\
        --method scvae --rows-cache segtool-out/scorer-rows --out segtool-out/loko-scvae

With --unlabelled FOLDER, pseudo-labelled photos (bench/pseudo_labels.py) join every fit as
one more set; they are never left out, having no masks to score.

Writes OUT/scorer-all.json, OUT/scorer-without-SET.json, OUT/SET/results.csv and OUT/loko.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_cluster_scorer import add_model_options, add_set_options, balanced_fit, fit_sets, tree_option  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_set_options(parser)
    parser.add_argument("--saliency-cue", action=argparse.BooleanOptionalAction, default=True,
                        help="scorers weigh the RBD saliency cue beside the nine grid cues (as shipped)")
    parser.add_argument("--geodesic-cue", action=argparse.BooleanOptionalAction, default=True,
                        help="fold scorers weigh the geodesic cue too (as the shipped scorer does)")
    parser.add_argument("--limit", type=int, default=None, help="held-out images per set (for a quick look)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--fold-overrides", action="append", default=[],
                        help="JSON {'leave_one_kind_out': {SET: {setting: value}}} (bench/saliency_blend.py or "
                             "bench/choose_method.py --json): settings chosen without SET, given to the method scored "
                             "on SET; may be given more than once (the files' settings are merged)")
    add_model_options(parser)
    args = parser.parse_args(argv)
    trees = tree_option(args, "leave_one_kind_out")
    if len(args.datasets) < 2:
        sys.exit("leave_one_kind_out: give at least two datasets")

    from segtool.data.readers import open_dataset
    from segtool.evaluation.runner import EvalPlan, run_eval
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.pipeline.models import load_extractor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ks = tuple(int(k) for k in args.ks.split(","))
    sets = fit_sets(args, ks, 3, None)
    # The labelled sets take turns being left out; unlabelled photos (no masks) stay in every fit.
    specs = dict(zip(list(sets)[:len(args.datasets)], args.datasets))
    command = "python bench/leave_one_kind_out.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def fit(names: list[str], path: Path) -> Path:
        provenance = {"command": command, "datasets": names, "method": args.method, "model": args.model or "default",
                      "stride": 3, "ks": list(ks), "weighting": "each set weighs the same",
                      **({"unlabelled": args.unlabelled, "unlabelled_stride": args.unlabelled_stride}
                         if args.unlabelled else {})}
        balanced_fit({n: sets[n] for n in names}, provenance, args.saliency_cue, args.geodesic_cue, trees).save(path)
        return path

    fold_overrides: dict[str, dict] = {}
    for path in args.fold_overrides:
        for name, settings in json.loads(Path(path).read_text())["leave_one_kind_out"].items():
            fold_overrides.setdefault(name, {}).update(settings)
    all_scorer = fit(list(sets), out / "scorer-all.json")
    report = []
    for name, spec in specs.items():
        without = fit([n for n in sets if n != name], out / f"scorer-without-{name}.json")
        methods = []
        for label, scorer in (("in-suite", all_scorer), ("leave-one-kind-out", without)):
            method = parse_method(args.method)
            method.overrides["scorer"] = str(scorer)
            if label == "leave-one-kind-out":
                method.overrides.update(fold_overrides.get(name, {}))
            methods.append((label, build_segmenter(method, extractor_factory=lambda: load_extractor(args.model))))
        plan = EvalPlan([open_dataset(spec, args.data_root)], methods, limit=args.limit, subset="held-out",
                        out_dir=out / name, resume=(out / name / "results.csv").is_file())
        summary = run_eval(plan)
        by = {r["method"]: r for r in summary["results"]}
        (paired,) = [p for p in summary["paired"] if p["dataset"] == name]
        report.append({"set": name, "images": by["in-suite"]["images"], "in_suite": by["in-suite"]["iou"],
                       "leave_one_kind_out": by["leave-one-kind-out"]["iou"],
                       "difference": paired["iou"]["mean"], "se": paired["iou"]["se"],
                       "fg_choice_ok_loko": by["leave-one-kind-out"]["foreground_choice_correct"]})
        print(f"{name}: in-suite {100 * report[-1]['in_suite']:.1f}, left out {100 * report[-1]['leave_one_kind_out']:.1f}",
              file=sys.stderr, flush=True)
    mean = {key: sum(r[key] for r in report) / len(report) for key in ("in_suite", "leave_one_kind_out")}
    (out / "loko.json").write_text(json.dumps({"command": command, "method": args.method, "sets": report,
                                               "mean": mean}, indent=2) + "\n")
    print(f"method {args.method}; strict IoU (%) on each set's held-out images (index % 3 != 0)")
    print(f"{'set':<24} {'images':>6} {'in-suite':>9} {'left out':>9} {'difference':>16} {'fg ok':>6}")
    for r in report:
        print(f"{r['set']:<24} {r['images']:>6} {100 * r['in_suite']:>9.1f} {100 * r['leave_one_kind_out']:>9.1f} "
              f"{100 * r['difference']:>+9.2f} +- {100 * r['se']:.2f} {100 * r['fg_choice_ok_loko']:>5.0f}%")
    print(f"{'mean over sets':<24} {'':>6} {100 * mean['in_suite']:>9.1f} {100 * mean['leave_one_kind_out']:>9.1f}")


if __name__ == "__main__":
    main()
