#!/usr/bin/env bash
# The project's check for a GPU machine. It trains the imagenet recipe's model (the paper's d=3
# SC-VAE, 43M parameters, 256x256 crops, batch 16, bf16 autocast, its own data settings and
# `num_workers: auto`) on synthetic JPEGs for STEPS steps, stops it with SIGTERM part-way (as
# `timeout`, Slurm or Kubernetes would; the trainer saves a checkpoint and exits 130), resumes it
# once with --resume, and prints images/s, MFU, peak GPU memory and the first and last loss read
# from log.jsonl, in the fixed `gpu_check ...` lines of bench/gpu_check_summary.py.
#
# Expects, already installed: python with torch (a CUDA build) and this repo's dependencies
# (pyproject.toml: numpy, pillow, datasets, safetensors, pyyaml, typer, rich, matplotlib, ...).
# Installs nothing and reaches no network: it runs this checkout with PYTHONPATH=repo root.
# Everything it writes (images, run) goes to a temporary folder, removed at the end. Planned to
# take well under 5 minutes on one H100/H200 (300 steps of 16 images; the 43M model must run at
# about 30 images/s or more for the training itself to fit).
#
#   bash bench/gpu_check.sh            # on the GPU machine
#   bash bench/gpu_check.sh --tiny     # the same path on a CPU in seconds: tiny model, 32x32, batch 4
#
# Environment: PYTHON (default: python, else python3), STEPS and STOP_AT (the step after which
# the stop signal is sent) to change the run's length.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$(command -v python || command -v python3)}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export HF_HOME="$work/hf-home"
trap 'rm -rf "$work"' EXIT

if [[ "${1:-}" == "--tiny" ]]; then
  # The paper model's recipe with a tiny model: every code path of the full check, on a CPU.
  steps=${STEPS:-80}; stop_at=${STOP_AT:-10}; images=28; size=64x48; deadline=120
  settings=(--device cpu --allow-cpu
            --set model.d=2 --set model.base_channels=8 --set model.max_channels=16 --set model.code_dim=16
            --set model.num_atoms=32 --set model.lista_steps=4
            --set train.resolution=32 --set train.batch_size=4 --set data.holdout=4 --set data.val_resolution=32
            --set train.log_every=1)
elif [[ -z "${1:-}" ]]; then
  steps=${STEPS:-300}; stop_at=${STOP_AT:-100}; images=400; size=500x375; deadline=200
  settings=(--set train.log_every=10)
else
  echo "usage: bash bench/gpu_check.sh [--tiny]" >&2
  exit 2
fi
# Only the stop and the end write checkpoints: the check measures training, not disk writes.
settings+=(--set train.ckpt_every=1000000 --max-steps "$steps")

"$python" "$repo/bench/synthetic_images.py" "$work/images" --count "$images" --size "$size"
run=$work/run
train=("$python" -m segtool train "$repo/recipes/imagenet.yaml" --data-root "$work/images" --out "$run" "${settings[@]}")

# 1. Train until the log passes STOP_AT, then SIGTERM the trainer.
"${train[@]}" >"$work/first.log" 2>&1 &
pid=$!
logged_step() { grep -o '"step": [0-9]*' "$run/log.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0; }
started=$SECONDS
while (( $(logged_step) < stop_at )); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "gpu_check: FAILED: training ended before step $stop_at; its output:" >&2
    cat "$work/first.log" >&2
    exit 1
  fi
  if (( SECONDS - started > deadline )); then
    kill -KILL "$pid"
    echo "gpu_check: FAILED: step $stop_at not reached within $deadline s; the output so far:" >&2
    cat "$work/first.log" >&2
    exit 1
  fi
  sleep 0.1
done
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
if (( status != 130 )); then
  echo "gpu_check: FAILED: the stopped run exited with $status, not 130 (checkpoint saved); its output:" >&2
  cat "$work/first.log" >&2
  exit 1
fi

# 2. Resume once and run to the end.
if ! timeout "$deadline" "${train[@]}" --resume >"$work/resumed.log" 2>&1; then
  echo "gpu_check: FAILED: the resumed run did not finish; its output:" >&2
  cat "$work/resumed.log" >&2
  exit 1
fi

# 3. The summary, from the two runs' output and log.jsonl.
"$python" "$repo/bench/gpu_check_summary.py" "$run" "$work/first.log" "$work/resumed.log" --steps "$steps"
