"""Can the data pipeline feed the model? Three rates side by side, for one recipe:

1. images/s the training data pipeline delivers (segtool.training.data's dataset and the
   trainer's own DataLoader, the recipe's data settings, random-resized crops at --resolution)
   with each number of loader workers in --workers;
2. images/s of the recipe's model, forward + backward, on this machine (batch --model-batch);
3. images/s a GPU would have to be fed: peak FLOP/s x assumed MFU / FLOPs per image, the FLOPs
   counted with torch's FlopCounterMode on one forward + backward at --resolution.

    python bench/data_loading.py [--data FOLDER] [--recipe imagenet] [--workers 0 1 2] [--seconds 4]

Without --data it writes synthetic 500x375 JPEGs to a temporary folder (bench/synthetic_images.py),
so it runs anywhere. Per-configuration times are short (--seconds of steady loading each).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def loader_rate(dataset, workers: int, batch: int, resolution: int, seconds: float) -> tuple[float, float, int]:
    """(seconds to the first batch, steady images/s after it, images timed) of the training DataLoader."""
    from scvae.training.distributed import DistEnv
    from scvae.training.trainer import StepBatchSampler, training_loader

    sampler = StepBatchSampler(len(dataset), batch, DistEnv(), seed=0, start_step=0, total_steps=1_000_000,
                               resolution_at=lambda step: resolution)
    t0 = time.perf_counter()
    batches = iter(training_loader(dataset, sampler, workers, seed=0, pin_memory=False))
    next(batches)
    first = time.perf_counter() - t0
    t1, images = time.perf_counter(), 0
    while time.perf_counter() - t1 < seconds:
        images += len(next(batches))
    rate = images / (time.perf_counter() - t1)
    del batches  # shuts the workers down
    return first, rate, images


def model_rate(model, batch: int, resolution: int) -> tuple[int, float]:
    """(FLOPs per image forward + backward, images/s of one timed training step) of `model` on the CPU.
    The FLOP count is also the warm-up step."""
    import torch

    from scvae.training.throughput import training_flops_per_image

    flops = training_flops_per_image(model, resolution)
    x = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    t0 = time.perf_counter()
    model.loss(x, model(x))["loss"].backward()
    return flops, batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="a folder of images (default: synthetic JPEGs in a temp folder)")
    parser.add_argument("--images", type=int, default=200, help="synthetic images to write")
    parser.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "imagenet.yaml"),
                        help="a recipe name or file: its data settings and its model (default: imagenet)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16, help="loader batch")
    parser.add_argument("--seconds", type=float, default=4.0, help="steady loading timed per worker count")
    parser.add_argument("--model-batch", type=int, default=2)
    parser.add_argument("--peak-flops", type=float, default=989e12, help="the GPU's peak (H200 bf16 dense: 989e12)")
    parser.add_argument("--mfu", type=float, default=0.4, help="the utilisation assumed for the GPU")
    args = parser.parse_args()

    import torch

    import scvae
    from segtool.training.data import AugmentedImages, load_image_sets
    from segtool.training.recipe import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from synthetic_images import write_synthetic_images

            t0 = time.perf_counter()
            data = str(write_synthetic_images(Path(tmp) / "images", args.images))
            print(f"{args.images} synthetic 500x375 JPEGs written in {time.perf_counter() - t0:.1f} s")
        recipe = load_recipe(args.recipe, ["data.holdout=0", f"data.root={json.dumps(data)}"])
        train_set, _ = load_image_sets(recipe.data)
        dataset = AugmentedImages(train_set, recipe.data)
        print(f"recipe {recipe.name}: {len(dataset)} images from {data}, data.cache {recipe.data.cache}, "
              f"{args.resolution}x{args.resolution} crops, batch {args.batch}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s) in the main process")
        rates = {}
        for workers in args.workers:
            first, rate, timed = loader_rate(dataset, workers, args.batch, args.resolution, args.seconds)
            rates[workers] = rate
            print(f"data pipeline, {workers} workers: {rate:7.1f} images/s ({1000 / rate:6.2f} ms/image, "
                  f"{timed} images timed; first batch after {first:.2f} s)")

    torch.manual_seed(0)
    model = scvae.SCVAE(recipe.model)
    flops, here = model_rate(model, args.model_batch, args.resolution)
    params = model.num_parameters()["total"]
    print(f"model ({params:,} parameters), forward + backward on this CPU, batch {args.model_batch}: "
          f"{here:.3f} images/s ({1000 / here:,.0f} ms/image)")
    needed = args.peak_flops * args.mfu / flops
    print(f"FLOPs per image, forward + backward at {args.resolution}x{args.resolution}: {flops / 1e9:,.1f} GFLOP")
    print(f"a GPU at {args.peak_flops / 1e12:,.0f} TFLOP/s peak (H200 bf16 dense: 989) and {100 * args.mfu:.0f}% MFU "
          f"consumes {needed:,.1f} images/s ({1000 / needed:.2f} ms/image)")
    best = max(rates, key=rates.get)
    print(f"ratios: data pipeline ({best} workers) / model here = {rates[best] / here:,.1f}x; "
          f"data pipeline ({best} workers) / GPU need = {rates[best] / needed:.2f}x")
    per_worker = [rates[w] / w for w in rates if w > 0]
    if per_worker:
        print(f"at {max(per_worker):.1f} images/s per worker, feeding the GPU takes about "
              f"{needed / max(per_worker):.0f} workers (cores) of this machine's speed")


if __name__ == "__main__":
    main()
