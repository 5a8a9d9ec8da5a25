"""bench/rollout_ablation.py: one run per LISTA rollout length, resumable, tabulated from the runs' logs."""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import rollout_ablation  # noqa: E402


def write_log(run: Path, rows: list[dict], torn: bool = False) -> None:
    run.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (run / "log.jsonl").write_text(text + ('{"step": 9, "kind": "chec' if torn else ""))


def checkpoint_row(step: int, psnr: float, active: float) -> dict:
    return {"step": step, "kind": "checkpoint", "val_psnr": psnr, "val_ssim": 0.5, "val_hoyer": 0.7,
            "val_active": active, "elapsed_s": 10.0 * step}


def test_the_table_reads_each_runs_last_checkpoint_and_names_missing_runs(tmp_path):
    write_log(tmp_path / "s-1", [checkpoint_row(100, 12.0, 0.5), {"step": 150, "loss": 0.1},
                                 checkpoint_row(200, 15.25, 0.25)], torn=True)
    table = rollout_ablation.table(tmp_path, [1, 5])
    row_1 = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert "| 200 |" in row_1 and "75.0%" in row_1 and "15.25" in row_1   # the newest checkpoint, zeros = 1 - active
    assert "| 5 | not run |" in table


def test_finished_runs_are_skipped_and_interrupted_ones_resume(tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(rollout_ablation.subprocess, "run", lambda command, check: launched.append(command))
    write_log(tmp_path / "s-1", [checkpoint_row(200, 15.0, 0.3)])
    write_log(tmp_path / "s-5", [checkpoint_row(100, 14.0, 0.3)])
    (tmp_path / "s-5" / "checkpoints").mkdir()
    args = argparse.Namespace(out=tmp_path, max_steps=200, recipe="small-cpu", data_root="data", set=["model.d=4"])
    for steps in (1, 5, 10):
        rollout_ablation.train_one(args, steps)
    assert len(launched) == 2                                     # s=1 is done already
    resumed, fresh = launched
    assert "model.lista_steps=5" in resumed and "--resume" in resumed and "model.d=4" in resumed
    assert "model.lista_steps=10" in fresh and "--resume" not in fresh
