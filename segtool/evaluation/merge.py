"""Merging the shards of one eval run (`segtool eval ... --shard I/N`) into the files the unsharded
run writes: the same results.csv rows in the same order, the same run.json and summary.json.

Only the `seconds` column (and the seconds per image derived from it) can differ: those are
timings of whichever process ran the image. Everything else is checked: every shard of one plan
is there once, each finished, and none was run with other settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from segtool.errors import UsageError
from segtool.evaluation.results import RUN_RECORD, ResultWriter, check_out_dir, read_results, read_run_record, write_run_record
from segtool.evaluation.runner import row_key, build_summary, save_summary


def _shard_of(record: dict, folder: Path) -> tuple[int, int]:
    shard = record.get("shard")
    if not (isinstance(shard, list) and len(shard) == 2 and all(isinstance(v, int) for v in shard)):
        raise UsageError(f"{folder}: its {RUN_RECORD} names no shard; it was not written by 'segtool eval --shard'")
    return shard[0], shard[1]


def _same_plan(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "shard"}


def read_shards(folders: list[Path]) -> tuple[dict, list[dict], dict[str, int]]:
    """(the unsharded run's record, every row, images per dataset) of shard folders 0..N-1 of one plan."""
    if not folders:
        raise UsageError("no shard folders to merge")
    records, rows, images = {}, [], {}
    plan = None
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such folder")
        record = read_run_record(folder)
        if record is None:
            raise UsageError(f"{folder}: no {RUN_RECORD}; not the output folder of 'segtool eval --shard'")
        i, n = _shard_of(record, folder)
        if plan is None:
            plan = _same_plan(record)
        elif _same_plan(record) != plan:
            raise UsageError(f"{folder}: run with other settings, datasets or methods than {folders[0]}; "
                             "shards of one run only")
        if (i, n) in records:
            raise UsageError(f"{folder}: shard {i}/{n} is given twice (also {records[(i, n)]})")
        records[(i, n)] = folder
        summary_path = folder / "summary.json"
        if not summary_path.is_file():
            raise UsageError(f"{folder}: shard {i}/{n} has not finished (no summary.json); rerun it with --resume")
        counts = {entry["name"]: entry["images"] for entry in json.loads(summary_path.read_text())["datasets"]}
        shard_rows = read_results(folder / "results.csv")
        expected = sum(counts.values()) * len(plan["method_order"]) * len(plan["noise_levels"])
        if len(shard_rows) != expected:
            raise UsageError(f"{folder}: shard {i}/{n} has {len(shard_rows)} of its {expected} rows; "
                             "rerun it with --resume to finish it")
        for name, count in counts.items():
            images[name] = images.get(name, 0) + count
        rows.extend(shard_rows)
    counts_n = {n for _, n in records}
    if len(counts_n) != 1:
        raise UsageError(f"shards of different splits: {', '.join(f'{i}/{n}' for i, n in sorted(records))}")
    n = counts_n.pop()
    missing = sorted(set(range(n)) - {i for i, _ in records})
    if missing:
        raise UsageError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing; merge needs all {n}")
    keys = [row_key(r) for r in rows]
    if len(set(keys)) != len(keys):
        raise UsageError("two shards hold the same image: they were not made with the same --shard split")
    return {**plan, "shard": [0, 1]}, rows, images


def unsharded_order(rows: list[dict], record: dict) -> list[dict]:
    """Rows in the order one unsharded run writes them: per dataset, per batch of images, per noise
    level, per method, per image."""
    datasets = {name: i for i, name in enumerate(record["dataset_order"])}
    methods = {label: i for i, label in enumerate(record["method_order"])}
    noises = {round(float(n), 6): i for i, n in enumerate(record["noise_levels"])}
    # An image's position among the evaluated images of its set (the index skips the other subset).
    position = {}
    for name in datasets:
        indices = sorted({int(r["index"]) for r in rows if r["dataset"] == name})
        position.update({(name, index): p for p, index in enumerate(indices)})
    batch = record["batch_size"]

    def key(row: dict):
        p = position[(row["dataset"], int(row["index"]))]
        return datasets[row["dataset"]], p // batch, noises[round(float(row["noise"]), 6)], methods[row["method"]], p

    return sorted(rows, key=key)


def merge_shards(folders: list[Path], out: Path) -> dict:
    """Write results.csv, run.json and summary.json of the whole run to `out`; returns the summary."""
    record, rows, images = read_shards([Path(f) for f in folders])
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; --out must be a folder")
    check_out_dir(out, resume=False)
    out.mkdir(parents=True, exist_ok=True)
    write_run_record(out, record)
    rows = unsharded_order(rows, record)  # the summary lists sets and methods in the order rows come
    writer = ResultWriter(out / "results.csv", resume=False)
    try:
        writer.write(rows)
    finally:
        writer.close()
    return save_summary(build_summary(rows, record, images), out)
