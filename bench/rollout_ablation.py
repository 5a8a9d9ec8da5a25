"""The LISTA rollout ablation (SC-VAE paper, Table 3): one training run per number of unrolled
steps s, then held-out sparsity, PSNR and SSIM side by side.

Each value of s trains `segtool train RECIPE --set model.lista_steps=S` into its own folder
`OUT/s-S` (every other setting identical); runs that already finished are not retrained, and
an interrupted one resumes. The table reads each run's last checkpoint row of log.jsonl: the
trainer's held-out evaluation (the recipe's last `data.holdout` images, never trained on).

    .venv/bin/python bench/rollout_ablation.py --data-root ../shared/data/imagenet-sample \\
        --out segtool-out/rollout --steps 1,5,10,15,20,25,30 --max-steps 300 [--set model.d=4 ...]
    .venv/bin/python bench/rollout_ablation.py --out segtool-out/rollout --table-only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run_folder(out: Path, steps: int) -> Path:
    return out / f"s-{steps}"


def last_checkpoint_row(run: Path) -> dict | None:
    """The newest `kind: checkpoint` row of a run's log (it carries the held-out metrics)."""
    log = run / "log.jsonl"
    if not log.is_file():
        return None
    rows = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a row torn by a kill mid-write
        if row.get("kind") == "checkpoint":
            rows.append(row)
    return max(rows, key=lambda r: r["step"]) if rows else None


def train_one(args: argparse.Namespace, steps: int) -> None:
    run = run_folder(args.out, steps)
    done = last_checkpoint_row(run)
    if done is not None and done["step"] >= args.max_steps:
        print(f"s={steps}: done already ({run})", flush=True)
        return
    command = [sys.executable, "-m", "segtool.cli.app", "train", args.recipe, "--data-root", args.data_root,
               "--out", str(run), "--max-steps", str(args.max_steps), "--set", f"model.lista_steps={steps}",
               *(x for s in args.set for x in ("--set", s))]
    if (run / "checkpoints").is_dir():
        command.append("--resume")
    print(f"s={steps}: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)


def table(out: Path, values: list[int]) -> str:
    lines = ["| s | steps | sparsity (zeros) | PSNR (dB) | SSIM | Hoyer | train time (s) |",
             "|---|---|---|---|---|---|---|"]
    for steps in values:
        row = last_checkpoint_row(run_folder(out, steps))
        if row is None or "val_psnr" not in row:
            lines.append(f"| {steps} | not run | | | | | |")
            continue
        lines.append(f"| {steps} | {row['step']} | {100 * (1 - row['val_active']):.1f}% | {row['val_psnr']:.2f} | "
                     f"{row['val_ssim']:.4f} | {row['val_hoyer']:.3f} | {row['elapsed_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="small-cpu")
    parser.add_argument("--data-root")
    parser.add_argument("--out", type=Path, required=True, help="parent folder of the runs s-1, s-5, ...")
    parser.add_argument("--steps", default="1,5,10,15,20,25,30", help="values of model.lista_steps, comma-separated")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--set", action="append", default=[], help="recipe override for every run (repeatable)")
    parser.add_argument("--table-only", action="store_true", help="tabulate the runs in --out, train nothing")
    args = parser.parse_args(argv)
    try:
        values = [int(v) for v in args.steps.split(",") if v.strip()]
    except ValueError:
        sys.exit(f"rollout_ablation: --steps must be whole numbers separated by commas, got {args.steps!r}")
    if not args.table_only:
        if not args.data_root:
            sys.exit("rollout_ablation: --data-root is needed to train (or pass --table-only)")
        for steps in values:
            train_one(args, steps)
    print(table(args.out, values))


if __name__ == "__main__":
    main()
