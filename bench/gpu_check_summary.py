"""The summary of bench/gpu_check.sh: a stopped and resumed training run, in fixed lines.

    python bench/gpu_check_summary.py RUN_DIR FIRST_RUN_OUTPUT RESUMED_RUN_OUTPUT --steps N

Prints, and exits 1 if the resume did not continue from the saved step or the run is incomplete:

    gpu_check device: cuda:0 (NVIDIA H200) | 42,970,755 parameters | 256x256, batch 16 | bf16 autocast True | 8 loader workers
    gpu_check resume: stopped at step 103 (checkpoint step-00000103), resumed from step 103, finished at step 300
    gpu_check speed: 512.3 images/s (median of 28 logged windows) | MFU 0.312 | peak GPU memory 21.40 GiB
    gpu_check loss: first 0.4807 (step 1) | last 0.0841 (step 300)
    gpu_check: OK

Images/s and MFU are medians over the logged windows, leaving out each run's first step (its
window includes the loader's start-up); on a CPU, MFU and GPU memory are `n/a`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import yaml

START = re.compile(r"training ([\d,]+) parameters on (\S+(?: \(.+?\))?) x (\d+) \(bf16 autocast: (\w+), "
                   r"(\d+) loader workers\), steps (\d+) -> (\d+)(?:, resumed from (\S+))?")
STOPPED = re.compile(r"interrupted at step (\d+); checkpoint saved to (\S+);")


def log_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") != "checkpoint"]


def summarise(run: Path, first_output: str, resumed_output: str, steps: int) -> tuple[list[str], bool]:
    first, resumed = START.search(first_output), START.search(resumed_output)
    stopped = STOPPED.search(first_output)
    if not (first and resumed and stopped):
        return ["gpu_check: FAILED: a run's output lacks its start line or the stop message"], False
    params, device, _, amp, workers, _, _, _ = first.groups()
    stop_step, checkpoint = int(stopped.group(1)), Path(stopped.group(2))
    resume_step, resumed_from = int(resumed.group(6)), resumed.group(8) or ""
    rows = log_rows(run)
    logged = [r["step"] for r in rows]
    batch = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))["train"]["batch_size"]
    resolution = rows[-1]["resolution"]
    lines = [f"gpu_check device: {device} | {params} parameters | {resolution}x{resolution}, batch {batch} | "
             f"bf16 autocast {amp} | {workers} loader workers"]
    continued = (resume_step == stop_step and Path(resumed_from).name == checkpoint.name
                 and logged == sorted(set(logged)) and logged[-1] == steps)
    lines.append(f"gpu_check resume: stopped at step {stop_step} (checkpoint {checkpoint.name}), resumed from step "
                 f"{resume_step}, finished at step {logged[-1]}" + ("" if continued else " MISMATCH"))
    # Each run's first logged step timed the loader's start-up too.
    steady = [r for r in rows if r["step"] not in (1, resume_step + 1)] or rows
    rate = statistics.median(r["images_per_s"] for r in steady)
    mfus = [r["mfu"] for r in steady if "mfu" in r]
    memory = [r["gpu_memory_gib"] for r in rows if "gpu_memory_gib" in r]
    lines.append(f"gpu_check speed: {rate:.1f} images/s (median of {len(steady)} logged windows) | "
                 f"MFU {f'{statistics.median(mfus):.3f}' if mfus else 'n/a'} | "
                 f"peak GPU memory {f'{max(memory):.2f} GiB' if memory else 'n/a'}")
    lines.append(f"gpu_check loss: first {rows[0]['loss']:.4f} (step {rows[0]['step']}) | "
                 f"last {rows[-1]['loss']:.4f} (step {rows[-1]['step']})")
    lines.append("gpu_check: OK" if continued else "gpu_check: FAILED: the resumed run did not continue from the saved step")
    return lines, continued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("first_output", type=Path)
    parser.add_argument("resumed_output", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args()
    lines, ok = summarise(args.run, args.first_output.read_text(encoding="utf-8"),
                          args.resumed_output.read_text(encoding="utf-8"), args.steps)
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
