"""The speed targets of the command line and the default pipeline, measured side by side in one run.

    .venv/bin/python bench/speed.py [--images 48] [--folder-images 100] [--repeat 3] [--quick]

Prints, per item and as ratios:
- the default pipeline (`scvae`, no code cache) against GrabCut on the same 128x128 images
  (scikit-image's photos, cropped as the eval protocol does): seconds per image and the ratio,
  one image at a time (`--workers 1`) and with the default workers (the cores), and the
  encoder's time alone, which no number of workers lowers;
- a cold `segtool segment astronaut.png` (a new process, no code cache), `segtool --help`, and a
  bad option value, as wall time of the whole process (best and median of --repeat);
- a folder of --folder-images images: images per second without the cache, with a cold cache and
  with a warm one;
- peak resident memory of `segtool segment` on a 6000x4000 photo.
Run it on a quiet machine: other jobs on the cores change every figure but the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def segtool_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "segtool.cli.app", *args]


def segtool_command_full_teardown(*args: str) -> list[str]:
    """The same command ending as an ordinary Python program does (the interpreter's whole
    shutdown), for the side-by-side row of what the console script's quick exit saves."""
    return [sys.executable, "-c", "import sys; from segtool.cli.app import main; main(sys.argv[1:])", *args]


def wall(command: list[str], repeat: int, env: dict | None = None) -> tuple[float, float]:
    """(best, median) wall seconds of a whole process, output discarded."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def per_image_seconds(segmenter, images: list[np.ndarray], batch: int = 8) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(images), batch):
        segmenter.segment_batch(images[start:start + batch])
    return (time.perf_counter() - t0) / len(images)


def pipeline_against_grabcut(n: int) -> None:
    from segment_speed import sample_images

    from scvae.devices import pick_precision
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.parallel import default_workers
    from segtool.pipeline.registry import build_segmenter, parse_method

    images = sample_images(n)
    auto = pick_precision("auto", "cpu")
    extractors = {precision: load_extractor(None, cache=False, precision=precision)
                  for precision in dict.fromkeys([auto, "float32"])}

    def default(precision: str, workers: int):
        extractor = extractors[precision]
        return build_segmenter(parse_method("scvae"), extractor_factory=lambda: extractor, workers=workers)

    print(f"per image, {n} images of 128x128 (no code cache; the model sees 256x256):")
    worker_counts = list(dict.fromkeys([1, default_workers()]))
    for workers in worker_counts:
        runs = [(f"default pipeline ({auto})", default(auto, workers))]
        if auto != "float32" and workers == 1:  # the encoder's precision is the largest single lever: show both
            runs.append(("default pipeline (float32)", default("float32", workers)))
        runs.append(("grabcut", build_segmenter(parse_method("grabcut"), workers=workers)))
        for _, segmenter in runs:
            segmenter.segment_batch(images[:2])  # model loaded and warmed: the per-image cost, not the start-up
        times = {name: per_image_seconds(segmenter, images) for name, segmenter in runs}
        print(f" --workers {workers} ({'one image at a time' if workers == 1 else f'{workers} images at once'}):")
        for name, seconds in times.items():
            print(f"  {name:28s} {1000 * seconds:7.1f} ms/image")
        for name, seconds in times.items():
            if name != "grabcut":
                print(f"  ratio {name} / grabcut: {seconds / times['grabcut']:.2f}  (target <= 1.0)")
        if workers == 1:
            # The encoder runs on every core already, whatever --workers: its time is a floor for the ratio.
            for precision, extractor in extractors.items():
                t0 = time.perf_counter()
                for start in range(0, len(images), 8):
                    extractor.extract(images[start:start + 8])
                encoding = (time.perf_counter() - t0) / len(images)
                print(f"  encoding alone ({precision}): {1000 * encoding:5.1f} ms/image, "
                      f"{encoding / times['grabcut']:.2f} x grabcut's whole time")


def command_line_times(repeat: int, work: Path) -> None:
    from PIL import Image
    from skimage import data

    photo = work / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    env = {**os.environ, "SEGTOOL_CACHE": str(work / "no-cache-here")}
    cold = ("segment", str(photo), "--no-cache", "-q", "--out", str(work / "cold"))
    print(f"whole process, wall seconds (best / median of {repeat}):")
    for name, command, target in [("segtool --help", segtool_command("--help"), 0.3),
                                  ("bad option (segment --k 0)", segtool_command("segment", str(photo), "--k", "0"), 0.5)]:
        best, median = wall(command, repeat, env)
        print(f"  {name:38s} {best:6.2f} / {median:6.2f} s   (target < {target} s)")
    # The two cold runs alternate, so that a slow spell of the machine falls on both alike.
    quick, full = [], []
    for _ in range(repeat):
        for times, command in ((quick, segtool_command(*cold)), (full, segtool_command_full_teardown(*cold))):
            times.append(wall(command, 1, env)[0])
            for extra in (work / "cold").glob("*"):
                extra.unlink()
    for name, times in (("cold segment astronaut.png (512x512)", quick),
                        ("  the same, full interpreter teardown", full)):
        print(f"  {name:38s} {min(times):6.2f} / {statistics.median(times):6.2f} s   (target < 2.5 s)")


def folder_rates(n: int, work: Path) -> None:
    from PIL import Image
    from segment_speed import sample_images

    folder = work / "folder"
    folder.mkdir()
    for i, image in enumerate(sample_images(n)):
        Image.fromarray(image).save(folder / f"img{i:03d}.png")
    cache = work / "cache"
    runs = [("no cache", ["--no-cache"]), ("cold cache", ["--cache-dir", str(cache)]),
            ("warm cache", ["--cache-dir", str(cache)])]
    print(f"a folder of {n} images of 128x128 (one process each, start-up included):")
    for i, (name, flags) in enumerate(runs):
        out = work / f"out{i}"
        t0 = time.perf_counter()
        subprocess.run(segtool_command("segment", str(folder), "-q", "--out", str(out), *flags),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        seconds = time.perf_counter() - t0
        print(f"  {name:12s} {n / seconds:6.1f} images/s  ({seconds:.1f} s)")


def large_photo_memory(work: Path) -> None:
    from PIL import Image
    from skimage import data

    from segtool.pipeline.features import resize_image

    photo = work / "large.jpg"
    Image.fromarray(resize_image(data.astronaut(), 6000, 4000)).save(photo, quality=90)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(segtool_command("segment", str(photo), "-q", "--no-cache", "--out", str(work / "large")),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KiB
    note = "" if peak > before else " (no larger than an earlier child's)"
    print(f"segment on a 6000x4000 photo: peak RSS {peak / 1024:.0f} MiB{note}, {seconds:.1f} s  (target < 2048 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48, help="images for the per-image comparison")
    parser.add_argument("--folder-images", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.images, args.folder_images, args.repeat = 6, 4, 1
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    pipeline_against_grabcut(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        command_line_times(args.repeat, work)
        folder_rates(args.folder_images, work)
        large_photo_memory(work)


if __name__ == "__main__":
    main()
