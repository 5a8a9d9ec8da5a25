"""bench/gpu_check.sh --tiny: the GPU machine's check (train, stop with SIGTERM, resume once,
summarise) run on a CPU with a tiny model, and its summary refusing a resume that went wrong."""

import json
import os
import re
import subprocess
import sys

from conftest import PYTHON, ROOT


def test_tiny_gpu_check_stops_resumes_and_summarises(tmp_path):
    env = {**os.environ, "PYTHON": PYTHON, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--tiny"], env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    kinds = ["gpu_check device: ", "gpu_check resume: ", "gpu_check speed: ", "gpu_check loss: ", "gpu_check: OK"]
    assert len(lines) == len(kinds) and all(line.startswith(kind) for line, kind in zip(lines, kinds)), lines
    assert lines[0].startswith("gpu_check device: cpu | ") and "| 32x32, batch 4 | bf16 autocast False |" in lines[0]
    resume = re.fullmatch(r"gpu_check resume: stopped at step (\d+) \(checkpoint step-(\d{8})\), "
                          r"resumed from step (\d+), finished at step 80", lines[1])
    assert resume, lines[1]
    stopped, saved, resumed = (int(v) for v in resume.groups())
    assert 10 <= stopped < 80 and stopped == saved == resumed
    speed = re.fullmatch(r"gpu_check speed: ([\d.]+) images/s \(median of (\d+) logged windows\) \| MFU n/a \| "
                         r"peak GPU memory n/a", lines[2])
    assert speed and float(speed.group(1)) > 0 and int(speed.group(2)) == 78, lines[2]  # 80 steps less two first ones
    loss = re.fullmatch(r"gpu_check loss: first ([\d.]+) \(step 1\) \| last ([\d.]+) \(step 80\)", lines[3])
    assert loss and float(loss.group(2)) < float(loss.group(1)), lines[3]
    assert not list(tmp_path.glob("gpu_check.*"))  # its temporary folder is removed


def test_the_summary_refuses_a_resume_that_started_elsewhere(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text("train: {batch_size: 4}\n")
    rows = [{"step": s, "loss": 1.0 / s, "images_per_s": 10.0, "resolution": 32} for s in (1, 2, 3, 1, 2, 3, 4)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = "training 1,000 parameters on cpu x 1 (bf16 autocast: False, 0 loader workers), steps {} -> 4{}\n"
    first = tmp_path / "first.log"
    first.write_text(start.format(0, "") + f"segtool: interrupted at step 3; checkpoint saved to {run}/checkpoints/"
                     "step-00000003; rerun with --resume to continue\n")
    resumed = tmp_path / "resumed.log"
    resumed.write_text(start.format(0, ""))  # started afresh: the checkpoint was not used
    result = subprocess.run([PYTHON, str(ROOT / "bench" / "gpu_check_summary.py"), str(run), str(first), str(resumed),
                             "--steps", "4"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "MISMATCH" in result.stdout and result.stdout.splitlines()[-1].startswith("gpu_check: FAILED")
