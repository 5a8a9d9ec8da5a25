"""The files of an eval run: results.csv (one row per image), and run.json (what made them).

`--resume` trusts nothing it did not write: results.csv must carry this version's header and
every row read back must hold a known dataset id, finite scores in [0, 1] and a noise level;
run.json must record the same seed, crop, image resize and stride, and the same settings for
each method and dataset root the rows were made with. A file that fails is refused with one
line naming it, before anything is written.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Iterable

from segtool.errors import InputError, UsageError

RESULT_FIELDS = ["dataset", "method", "noise", "index", "id", "iou", "dice", "iem_iou", "iem_dice", "boundary_f",
                 "inverse_better",
                 "foreground_fraction", "truth_fraction", "seconds"]
SCORE_FIELDS = ("iou", "dice", "iem_iou", "iem_dice", "boundary_f", "foreground_fraction", "truth_fraction")
RUN_RECORD = "run.json"
# Settings that change what a row holds: a resumed run must keep them.
FIXED_SETTINGS = ("format_version", "seed", "protocol", "size", "image_resize", "stride")
OWN_FILES = ("results.csv", "summary.json", RUN_RECORD)


def safe_name(label: str) -> str:
    """A set, method or image name as a file or folder name: 'scvae[k=3]' -> 'scvae_k=3_'."""
    import re

    return re.sub(r"[^A-Za-z0-9._=-]", "_", label).lstrip(".") or "_"


class ResultsFileError(InputError):
    """A results.csv or run.json that segtool did not write, or that was damaged."""


def _refuse(path: Path, line: int | None, why: str) -> ResultsFileError:
    where = f"{path}" + (f" line {line}" if line else "")
    return ResultsFileError(f"{where}: {why}; this is not a results file segtool can resume "
                            "(move it away or choose another --out)")


def _check_row(row: dict, path: Path, line: int) -> None:
    if any("\x00" in str(value) for value in row.values()):
        raise _refuse(path, line, "a NUL character")
    for key in SCORE_FIELDS:
        try:
            value = float(row[key])
        except (TypeError, ValueError):
            raise _refuse(path, line, f"{key} {row[key]!r} is not a number") from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise _refuse(path, line, f"{key} {row[key]!r} is not a fraction in [0, 1]")
    for key, low in (("noise", 0.0), ("seconds", 0.0), ("index", 0)):
        try:
            value = float(row[key])
        except (TypeError, ValueError):
            raise _refuse(path, line, f"{key} {row[key]!r} is not a number") from None
        if not (math.isfinite(value) and value >= low):
            raise _refuse(path, line, f"{key} {row[key]!r} must be a finite number >= {low:g}")
    if row["inverse_better"] not in ("True", "False"):
        raise _refuse(path, line, f"inverse_better {row['inverse_better']!r} is not True or False")
    if not row["id"] or not row["dataset"] or not row["method"]:
        raise _refuse(path, line, "an empty dataset, method or id")


def read_results(path: Path) -> list[dict]:
    """Every row of a results.csv, checked; a last row torn by a kill is dropped."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _refuse(path, None, "not UTF-8 text") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # torn by a kill mid-write: the row was never complete
    if not lines:
        return []
    reader = csv.DictReader(lines)
    if reader.fieldnames != RESULT_FIELDS:
        raise _refuse(path, 1, f"header {','.join(reader.fieldnames or [])!r} is not this version's "
                               f"({','.join(RESULT_FIELDS)})")
    rows = []
    for line, row in enumerate(reader, start=2):
        if None in row or None in row.values():
            raise _refuse(path, line, "a row with the wrong number of fields")
        _check_row(row, path, line)
        rows.append(row)
    return rows


class ResultWriter:
    """Appends rows, flushed and fsynced per batch, so a killed run loses at most one batch."""

    def __init__(self, path: Path, resume: bool):
        self.path = path
        exists = path.is_file() and path.stat().st_size > 0
        if exists and resume:
            self._truncate_torn_tail()
        self.file = path.open("a" if (exists and resume) else "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, fieldnames=RESULT_FIELDS)
        if not (exists and resume):
            self.writer.writeheader()
            self.flush()

    def _truncate_torn_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def write(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.writer.writerow(row)
        self.flush()

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def read_run_record(out: Path) -> dict | None:
    path = out / RUN_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, None, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict) or not all(key in record for key in (*FIXED_SETTINGS, "methods", "datasets")):
        raise _refuse(path, None, "not a run record of segtool eval")
    return record


def check_out_dir(out: Path, resume: bool) -> None:
    """Before anything is written: an --out that holds files of another program (or of a user) is
    refused, never overwritten; a run to continue needs --resume."""
    if not out.is_dir():
        return
    record_exists = (out / RUN_RECORD).is_file()
    if (out / "results.csv").is_file() and not resume:
        raise UsageError(f"--out {out} already holds results.csv: add --resume to continue it, or choose another --out")
    if not record_exists and not (out / "results.csv").is_file():
        # No run of ours here (a resumed results.csv is checked row by row when read): a summary.json
        # or noise plot of the same name is someone else's file.
        foreign = sorted(p.name for p in out.iterdir()
                         if p.name in OWN_FILES or (p.name.startswith("noise") and p.suffix == ".png"))
        if foreign:
            raise UsageError(f"--out {out} holds {', '.join(foreign)} that segtool eval did not write there "
                             "(no run.json); they would be overwritten. Choose another --out")


def merge_run_record(out: Path, record: dict) -> dict:
    """The record to write for this run; refuses (UsageError) when resuming under other settings."""
    before = read_run_record(out)
    if before is None:
        return record
    changed = [f"{key} {before[key]!r} -> {record[key]!r}" for key in FIXED_SETTINGS if before[key] != record[key]]
    if before.get("shard", [0, 1]) != record["shard"]:
        changed.append(f"shard {before.get('shard', [0, 1])} -> {record['shard']}")
    for label, settings in record["methods"].items():
        if label in before["methods"] and before["methods"][label] != settings:
            changed.append(f"the settings of method {label}")
    for name, root in record["datasets"].items():
        if name in before["datasets"] and before["datasets"][name] != root:
            changed.append(f"dataset {name}: {before['datasets'][name]} -> {root}")
    if changed:
        raise UsageError(f"--resume: {out} was run with other settings ({'; '.join(changed)}); its rows would not "
                         "match. Use the same options, or choose another --out")
    return {**record, "methods": {**before["methods"], **record["methods"]},
            "datasets": {**before["datasets"], **record["datasets"]}}


def write_run_record(out: Path, record: dict) -> None:
    from scvae.fileio import atomic_write_text

    atomic_write_text(out / RUN_RECORD, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
