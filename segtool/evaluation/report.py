"""`eval --report`: an HTML page in the output folder to look at a run, not only read it.

The page holds the summary tables, the noise curves, and for each set and method its best,
median and worst image at the lowest noise level (image, ground truth, mask, with the IoU), so
that a reader sees what a score of 40 or 70 looks like. The example masks are made again from the
same crops and noise (segmenters are deterministic), which needs no mask files from the run.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

REPORT_FILE = "report.html"
PANEL_SIDE = 192  # pixels per panel on the page: the 128 protocol crop, enlarged to be seen


def pick_examples(rows: list[dict]) -> list[tuple[str, dict]]:
    """Best, median and worst row by strict IoU (ties broken by id, so the pick is stable)."""
    ranked = sorted(rows, key=lambda r: (float(r["iou"]), r["id"]))
    if not ranked:
        return []
    picks = [("worst", ranked[0]), ("median", ranked[len(ranked) // 2]), ("best", ranked[-1])]
    seen, out = set(), []
    for name, row in picks:
        if row["id"] not in seen:  # a set of one or two images: each shown once
            seen.add(row["id"])
            out.append((name, row))
    return out


def example_strip(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Image | ground truth | mask over the image (foreground kept, background dimmed), side by side."""
    from segtool.pipeline.features import resize_image

    def panel(rgb: np.ndarray) -> np.ndarray:
        return resize_image(np.ascontiguousarray(rgb), PANEL_SIDE, PANEL_SIDE)

    truth_rgb = np.repeat((truth.astype(np.uint8) * 255)[..., None], 3, axis=2)
    shown = (image.astype(np.float32) * np.where(mask[..., None], 1.0, 0.25)).astype(np.uint8)
    gap = np.full((PANEL_SIDE, 4, 3), 255, np.uint8)
    return np.concatenate([panel(image), gap, panel(truth_rgb), gap, panel(shown)], axis=1)


def write_examples(plan, summary: dict, rows: list[dict], out: Path) -> dict:
    """PNG strips of the best, median and worst image per (set, method); returns
    {(set, method): [(which, iou, relative path)]}."""
    from scvae.fileio import atomic_write_bytes
    from segtool.evaluation.noise import add_gaussian_noise
    from segtool.evaluation.protocol import iem_crop
    from segtool.evaluation.results import safe_name
    from segtool.io.outputs import encode_png

    noise = min(plan.noise_levels)
    methods = dict(plan.methods)
    shown: dict = {}
    for reader in plan.datasets:
        by_id = {s.id: s for s in reader.samples()}
        for label in methods:
            mine = [r for r in rows if r["dataset"] == reader.name and r["method"] == label
                    and abs(float(r["noise"]) - noise) < 1e-9]
            for which, row in pick_examples(mine):
                image, truth = reader.load(by_id[row["id"]])
                if plan.protocol == "iem":
                    image, truth = iem_crop(image, truth, plan.size, plan.image_resize)
                image = add_gaussian_noise(image, noise, plan.seed, int(row["index"]))
                mask = methods[label].segment(image).mask
                relative = Path("report") / safe_name(reader.name) / f"{safe_name(label)}-{which}.png"
                atomic_write_bytes(out / relative, encode_png(example_strip(image, truth, mask), relative))
                shown.setdefault((reader.name, label), []).append((which, float(row["iou"]), row["id"], relative))
    return shown


def _percent(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{100 * value:.1f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _score_rows(results: list[dict]) -> list[list[str]]:
    return [[r["method"], f"{r['noise']:g}", str(r.get("sets", r["images"])), _percent(r["iou"]),
             _percent((r.get("held_out") or {}).get("iou")), _percent(r["dice"]), _percent(r["iem_iou"]),
             _percent(r.get("boundary_f")),
             _percent(r["foreground_choice_correct"]), f"{r['seconds_per_image']:.3f}"] for r in results]


SCORE_HEADERS = ["method", "noise", "images", "IoU strict", "IoU held-out", "DICE strict", "IoU IEM", "boundary F",
                 "fg choice ok",
                 "s/image"]

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0 1em 1em 0}
figcaption{font-size:.85em;color:#555}img{image-rendering:pixelated}"""

# Marks on <body> how many images loaded: a headless browser (the tests) reads it from the DOM.
LOADED_SCRIPT = """<script>window.addEventListener('load',function(){var a=document.images,n=0;
for(var i=0;i<a.length;i++){if(a[i].complete&&a[i].naturalWidth>0)n++;}
document.body.setAttribute('data-images-loaded',n+'/'+a.length);});</script>"""


def _protocol_text(protocol: dict) -> str:
    if protocol["name"] == "native":
        return "every image at its own size"
    return f"crops of {protocol['size']}x{protocol['size']}, images resized {protocol['image_resize']}"


def render_report(summary: dict, examples: dict, plots: list[str]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>segtool eval: "
             f"{html.escape(summary['dataset'])}</title><style>{STYLE}</style></head><body>",
             f"<h1>segtool eval: {html.escape(summary['dataset'])}</h1>",
             f"<p>IoU and DICE in %, strict = the mask as given, IEM = the better of the mask and its inverse; "
             f"boundary F = outline precision and recall within {summary['protocol']['boundary_tolerance_pixels']} "
             f"pixels; {html.escape(_protocol_text(summary['protocol']))}. Held-out: images outside the selection "
             "subset.</p>"]
    for entry in summary["datasets"]:
        results = [r for r in summary["results"] if r["dataset"] == entry["name"]]
        parts.append(f"<h2>{html.escape(entry['name'])} ({entry['images']} images)</h2>")
        parts.append(_table(SCORE_HEADERS, _score_rows(results)))
    if len(summary["datasets"]) > 1:
        parts.append(f"<h2>Mean over {len(summary['datasets'])} sets</h2>")
        parts.append(_table(["method", "noise", "sets", *SCORE_HEADERS[3:]], _score_rows(summary["mean_over_sets"])))
    if summary.get("paired"):
        def diff(d):
            return "-" if d["mean"] is None else f"{100 * d['mean']:+.2f} ± {100 * (d['se'] or 0):.2f}"

        parts.append(f"<h2>Paired per-image IoU difference against {html.escape(summary['paired'][0]['against'])}</h2>")
        parts.append("<p>Points, mean ± standard error; within two standard errors is no measured difference.</p>")
        parts.append(_table(["set", "method", "noise", "images", "IoU difference", "boundary F difference"],
                            [[p["dataset"], p["method"], f"{p['noise']:g}", str(p["iou"]["images"]), diff(p["iou"]),
                              diff(p["boundary_f"])] for p in summary["paired"]]))
    if plots:
        parts.append("<h2>Noise robustness</h2>")
        parts.extend(f"<img src='{html.escape(p)}' alt='noise curve' style='max-width:100%'>" for p in plots)
    if examples:
        parts.append("<h2>Examples: worst, median and best image of each method (image | truth | mask)</h2>")
        for (dataset, method), shown in examples.items():
            parts.append(f"<h3>{html.escape(dataset)}: {html.escape(method)}</h3><div>")
            for which, iou, image_id, path in shown:
                parts.append(f"<figure><img src='{html.escape(path.as_posix())}' alt='{which}'>"
                             f"<figcaption>{which}: IoU {100 * iou:.1f} ({html.escape(image_id)})</figcaption></figure>")
            parts.append("</div>")
    parts.append(LOADED_SCRIPT + "</body></html>\n")
    return "\n".join(parts)


def write_report(plan, summary: dict, out: Path) -> Path:
    from scvae.fileio import atomic_write_text
    from segtool.evaluation.runner import plan_rows

    rows = plan_rows(plan, out)
    examples = write_examples(plan, summary, rows, out)
    plots = sorted(p.name for p in out.glob("noise*.png"))
    path = out / REPORT_FILE
    atomic_write_text(path, render_report(summary, examples, plots))
    return path
