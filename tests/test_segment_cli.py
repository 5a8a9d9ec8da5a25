"""`segtool segment` on good inputs: the files it writes, the JSON it prints, and a fast `--help`."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import scvae
from segtool.cli.app import main

from conftest import ROOT, run_cli, subprocess_env, tiny_config, tiny_model  # noqa: F401 (fixture)


def disc_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A bright disc on a dark textured background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 70, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    image[(yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 4) ** 2] = (240, 210, 70)
    return image


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = {"one.png": (48, 64), "two.jpg": (72, 56), "three.png": (40, 40)}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        Image.fromarray(disc_image(h, w, seed=i)).save(folder / name)
    (folder / "notes.txt").write_text("not an image: folders only contribute their images\n")
    return folder


def test_one_image_writes_mask_overlay_and_cluster_map(photos, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "segment", photos / "one.png", "--out", out, "--model", tiny_model)
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["one_clusters.png", "one_mask.png", "one_overlay.png"]
    mask = Image.open(out / "one_mask.png")
    assert mask.mode == "L" and mask.size == (64, 48)  # the image's own size, not the code grid's
    values = np.unique(np.asarray(mask))
    assert set(values) <= {0, 255}
    overlay = Image.open(out / "one_overlay.png")
    assert overlay.mode == "RGB" and overlay.size == (64, 48)
    assert Image.open(out / "one_clusters.png").size == (64, 48)
    # Without --json the report goes to stderr, keeping stdout clean for pipes.
    assert stdout == ""
    assert err.strip() == f"1 segmented -> {out}"


def test_folder_json_reports_every_image(photos, tiny_model, tmp_path, capsys):
    code, stdout, err = run_cli(capsys, "segment", photos, "--json", "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 0, err
    payload = json.loads(stdout)  # stdout is only the JSON document
    assert payload["failed"] == []
    results = {os.path.basename(r["input"]): r for r in payload["results"]}
    assert sorted(results) == ["one.png", "three.png", "two.jpg"]
    for name, r in results.items():
        assert 0.0 < r["foreground_fraction"] < 1.0  # never an empty or full mask
        sizes = {int(c): n for c, n in r["cluster_sizes"].items()}
        # The cluster map shows the clustering at k, or the middle one of a vote that does not include k.
        settings = payload["settings"]
        votes = sorted(settings["consensus"])
        shown = settings["k"] if settings["k"] in votes or not votes else votes[len(votes) // 2]
        assert len(sizes) == shown
        assert set(r["cluster_scores"]) == set(r["cluster_sizes"])
        assert all(isinstance(v, float) and v >= 0 for v in r["cluster_scores"].values())
        assert r["foreground_clusters"] and set(map(str, r["foreground_clusters"])) < set(r["cluster_sizes"])
        mask = np.asarray(Image.open(r["outputs"]["mask"])) > 127
        assert mask.shape == (r["height"], r["width"])
        assert mask.mean() == pytest.approx(r["foreground_fraction"], abs=1e-4)


def test_glob_selects_matching_images(photos, tiny_model, tmp_path, capsys):
    code, stdout, err = run_cli(capsys, "segment", f"{photos}/*.png", "--json", "--out", tmp_path / "out",
                                "--model", tiny_model)
    assert code == 0, err
    assert sorted(os.path.basename(r["input"]) for r in json.loads(stdout)["results"]) == ["one.png", "three.png"]


def test_glob_matching_nothing_is_a_failed_input(tmp_path, capsys):
    code, _, err = run_cli(capsys, "segment", f"{tmp_path}/*.png", "--out", tmp_path / "out")
    assert code == 1
    assert "no image files match this pattern" in err


def test_k_and_method_are_reflected_in_the_json_settings(photos, tiny_model, tmp_path, capsys):
    code, stdout, err = run_cli(capsys, "segment", photos / "two.jpg", "--k", "3", "--method", "kmeans", "--json",
                                "--out", tmp_path / "out", "--model", tiny_model)
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["settings"]["k"] == 3 and payload["settings"]["method"] == "kmeans"
    (result,) = payload["results"]
    assert len(result["cluster_sizes"]) == 3
    # The clusters partition the code grid: about 256x256 model pixels / 8^2 cells for a d=3 model.
    assert 700 <= sum(result["cluster_sizes"].values()) <= 1100


def test_help_is_fast_and_does_not_import_torch():
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "segtool", "--help"], capture_output=True, text=True,
                          env=subprocess_env(), cwd=ROOT, timeout=60)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert "segment" in proc.stdout and "eval" in proc.stdout
    # torch alone takes ~2.3 s to import here; --help must not pay for it (generous bound for a loaded machine).
    assert elapsed < 8, elapsed
    probe = ("import sys; from segtool.cli.app import main\n"
             "try:\n    main(['segment', '--help'])\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('torch', 'sklearn', 'cv2', 'datasets', 'scvae') if m in sys.modules]\n"
             "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


def _write_many(folder: str, prefix: str, count: int, barrier) -> None:
    from segtool.io.outputs import OutputDir

    out = OutputDir(folder, [])
    barrier.wait(timeout=60)   # both runs have read the (empty) record before either writes
    for i in range(count):
        out.write_png(f"{prefix}{i}_mask.png", np.zeros((4, 4), np.uint8))


def test_two_runs_into_one_folder_keep_both_records(tmp_path):
    """Two `segment` runs writing into the same --out at once: each must still own its files after."""
    import multiprocessing

    from segtool.io.outputs import OutputDir

    folder = tmp_path / "shared-out"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    runs = [context.Process(target=_write_many, args=(str(folder), prefix, 15, barrier)) for prefix in ("a", "b")]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
        assert run.exitcode == 0
    later = OutputDir(folder, [])
    assert later.owned == {f"{p}{i}_mask.png" for p in ("a", "b") for i in range(15)}
    later.check_free(["a3_mask.png", "b14_mask.png"], set())   # a rerun of either may replace its files


def test_an_image_on_standard_input_and_short_options(tmp_path, tiny_model):
    """`cat img | segtool segment - -k 3 -o out`: outputs named stdin_*, the temporary copy removed."""
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "segtool", "segment", "-", "-k", "3", "-o", str(out), "--model", tiny_model, "--json"]
    proc = subprocess.run(argv, input=image.read_bytes(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    (result,) = json.loads(proc.stdout)["results"]
    assert result["input"] == "-"
    assert sorted(p.name for p in out.glob("*.png")) == ["stdin_clusters.png", "stdin_mask.png", "stdin_overlay.png"]
    empty = subprocess.run(argv, input=b"", capture_output=True, timeout=120)
    assert empty.returncode == 2 and b"standard input is empty" in empty.stderr
    both = subprocess.run([sys.executable, "-m", "segtool", "segment", "-", "--out", "-", "--json"], input=b"x",
                          capture_output=True, timeout=120)
    assert both.returncode == 2 and b"--json cannot share it" in both.stderr and not Path("-").exists()


def test_version_and_short_help():
    version = subprocess.run([sys.executable, "-m", "segtool", "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("segtool ")
    short = subprocess.run([sys.executable, "-m", "segtool", "eval", "-h"], capture_output=True, text=True, timeout=60)
    assert short.returncode == 0 and "--subset" in short.stdout
