"""`segtool eval` on a small synthetic `folder:` dataset: the files it writes, noise sweeps, and
resuming after an interruption (simulated and a real SIGKILL) with the same summary as an
uninterrupted run."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import scvae
from segtool.cli.app import main
from segtool.cli.options import parse_noise_levels
from segtool.evaluation.noise import add_gaussian_noise

from conftest import ROOT, subprocess_env, tiny_config, tiny_model  # noqa: F401 (fixture)

SCORES = ("iou", "dice", "iem_iou", "iem_dice", "foreground_choice_correct")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """12 images 64x48: a bright disc (the object) on a textured background; masks 0/255."""
    root = tmp_path_factory.mktemp("discs")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:48, :64]
    for i in range(12):
        cy, cx, r = 24 + rng.integers(-4, 5), 32 + rng.integers(-6, 7), rng.integers(9, 15)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image = (40 + 30 * np.sin(xx / 2.5 + i)[..., None] + rng.integers(0, 40, (48, 64, 3))).astype(np.uint8)
        image[disc] = (235, 205, 60)
        Image.fromarray(image).save(root / "images" / f"disc{i:02d}.png")
        Image.fromarray(disc.astype(np.uint8) * 255).save(root / "masks" / f"disc{i:02d}.png")
    return root


def run_cli(*argv, capsys=None) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr() if capsys else ("", "")
    return info.value.code, out, err


def rows_of(out: Path) -> list[dict]:
    with (out / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def scores_of(summary: dict) -> dict:
    """The numeric results per (method, noise), without the timings (which differ run to run)."""
    return {(r["method"], r["noise"]): (r["images"], *(round(r[k], 9) for k in SCORES)) for r in summary["results"]}


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# --no-cache: these tests are about the harness; whether cached codes reproduce fresh ones is
# tested on CodeExtractor itself (tests/test_pipeline_units.py).
COMPARED = ["--methods", "scvae", "--compare", "grabcut,colour,ellipse", "--limit", "6", "--no-cache"]


@pytest.fixture(scope="module")
def compared(dataset, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compared") / "run"
    code, _, _ = run_cli("eval", f"folder:{dataset}", *COMPARED, "--model", tiny_model, "--out", out)
    assert code == 0
    return out


def test_results_csv_has_one_row_per_method_and_image(compared):
    rows = rows_of(compared)
    keys = [(r["method"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 4 * 6
    assert {m for m, _ in keys} == {"scvae", "grabcut", "colour", "ellipse"}
    assert {i for _, i in keys} == {f"disc{i:02d}" for i in range(6)}  # --limit takes the first, in order
    for r in rows:
        assert float(r["iem_iou"]) >= float(r["iou"])  # IEM keeps the better of mask and inverse


def test_the_summary_records_the_encoders_precision(compared):
    from scvae.devices import pick_precision

    assert summary_of(compared)["precision"] == pick_precision("auto", "cpu")


def test_summary_reports_strict_and_iem_scores_per_method(compared):
    summary = summary_of(compared)
    assert summary["protocol"]["image_resize"] == "bilinear"
    assert summary["protocol"]["mask_resize"] == "nearest"
    by_method = {r["method"]: r for r in summary["results"]}
    assert set(by_method) == {"scvae", "grabcut", "colour", "ellipse"}
    rows = rows_of(compared)
    for method, r in by_method.items():
        assert r["images"] == 6 and r["noise"] == 0
        for key in SCORES:
            assert 0.0 <= r[key] <= 1.0
        # The summary is the mean of the per-image rows ...
        mine = [row for row in rows if row["method"] == method]
        assert r["iou"] == pytest.approx(np.mean([float(row["iou"]) for row in mine]), abs=1e-6)
        assert r["iem_dice"] == pytest.approx(np.mean([float(row["iem_dice"]) for row in mine]), abs=1e-6)
        wrong = np.mean([row["inverse_better"] == "True" for row in mine])
        assert r["foreground_choice_correct"] == pytest.approx(1 - wrong)
    # ... and the harness scores each prediction against its own image's mask, cropped alike: a
    # bright disc on a dark background is easy for GrabCut (a misaligned crop would score far lower),
    # and the centred ellipse never needs the inverse.
    assert by_method["grabcut"]["iou"] > 0.85 and by_method["colour"]["iou"] > 0.5
    assert by_method["ellipse"]["foreground_choice_correct"] == 1.0


def test_noise_sweep_writes_rows_per_level_and_a_plot(dataset, tiny_model, tmp_path):
    out = tmp_path / "noisy"
    code, _, _ = run_cli("eval", f"folder:{dataset}", "--methods", "scvae", "--compare", "ellipse", "--limit", "2",
                         "--noise", "0.2,0,0.1", "--model", tiny_model, "--out", out, "--no-cache")
    assert code == 0
    rows = rows_of(out)
    assert len(rows) == 3 * 2 * 2  # levels x methods x images
    assert sorted({float(r["noise"]) for r in rows}) == [0.0, 0.1, 0.2]
    assert {(r["method"], r["noise"]) for r in summary_of(out)["results"]} == {
        (m, n) for m in ("scvae", "ellipse") for n in (0.0, 0.1, 0.2)}
    with Image.open(out / "noise.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 300


def test_noise_is_seeded_per_image_and_sigma_zero_is_the_image():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert add_gaussian_noise(image, 0.0, seed=0, index=3) is image
    a = add_gaussian_noise(image, 0.1, seed=0, index=3)
    assert np.array_equal(a, add_gaussian_noise(image, 0.1, seed=0, index=3))  # a resumed run sees the same
    assert not np.array_equal(a, add_gaussian_noise(image, 0.1, seed=0, index=4))
    assert not np.array_equal(a, add_gaussian_noise(image, 0.1, seed=1, index=3))
    assert a.dtype == np.uint8 and a.shape == image.shape
    # std on the [0, 1] scale: 0.1 is about 25 grey levels (less where clipping at 0/255 bites)
    assert 15 < np.std(a.astype(float) - image) < 27
    assert parse_noise_levels("0.2, 0,0.1,0.1") == [0.0, 0.1, 0.2]


def _truncate(results: Path, keep: int, torn: bool) -> None:
    """Keep the header and the first `keep` rows, then (optionally) half of the next row, as a kill
    in the middle of a write would leave the file."""
    text = results.read_text().splitlines(keepends=True)
    cut = text[: 1 + keep]
    if torn:
        cut.append(text[1 + keep][: len(text[1 + keep]) // 2])
    results.write_text("".join(cut))


def test_resume_after_a_torn_results_file_gives_the_uninterrupted_summary(compared, dataset, tiny_model,
                                                                         tmp_path):
    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copy(compared / "results.csv", out / "results.csv")
    _truncate(out / "results.csv", keep=15, torn=True)  # rows of scvae, grabcut, part of colour
    code, _, _ = run_cli("eval", f"folder:{dataset}", *COMPARED, "--model", tiny_model, "--out", out, "--resume")
    assert code == 0
    rows = rows_of(out)
    assert len(rows) == 24 and len({(r["method"], r["id"]) for r in rows}) == 24
    assert scores_of(summary_of(out)) == scores_of(summary_of(compared))


def test_rerun_into_an_existing_results_file_needs_resume(compared, dataset, capsys):
    before = (compared / "results.csv").read_bytes()
    code, _, err = run_cli("eval", f"folder:{dataset}", *COMPARED, "--out", compared, capsys=capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "Traceback" not in err
    assert (compared / "results.csv").read_bytes() == before


def test_a_killed_run_resumes_to_the_uninterrupted_summary(dataset, tiny_model, tmp_path):
    # All three runs encode one image at a time: CPU convolutions round differently for other batch
    # sizes, which can move a borderline cell, so only like-for-like runs must agree exactly.
    args = ["eval", f"folder:{dataset}", "--methods", "scvae", "--limit", "6", "--batch-size", "1",
            "--model", tiny_model, "--no-cache"]
    # The real command in its own process, slowed per image so that the kill lands mid-run on any machine.
    slowed = ("import sys, time\n"
              "import segtool.evaluation.runner as ev\n"
              "score = ev.score_mask\n"
              "ev.score_mask = lambda pred, gt: (time.sleep(0.25), score(pred, gt))[1]\n"
              "from segtool.cli.app import main\n"
              "main(sys.argv[1:])\n")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", slowed, *args, "--out", str(killed)], cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if (killed / "results.csv").is_file() and len(rows_of(killed)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert 2 <= len(rows_of(killed)) < 6
    assert not (killed / "summary.json").exists()

    code, _, _ = run_cli(*args, "--out", killed, "--resume")
    assert code == 0
    uninterrupted = tmp_path / "uninterrupted"
    code, _, _ = run_cli(*args, "--out", uninterrupted)
    assert code == 0
    assert len(rows_of(killed)) == 6
    assert scores_of(summary_of(killed)) == scores_of(summary_of(uninterrupted))


def test_folder_without_masks_is_one_line_exit_1(dataset, tmp_path, capsys):
    shutil.copytree(dataset / "images", tmp_path / "only-images" / "images")
    code, _, err = run_cli("eval", f"folder:{tmp_path / 'only-images'}", "--methods", "ellipse", "--out",
                           tmp_path / "out", capsys=capsys)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("segtool: error: ") and "masks/" in line
    assert not (tmp_path / "out").exists()


def test_nearest_image_resize_is_accepted_and_recorded(dataset, tmp_path, capsys):
    out = tmp_path / "nearest"
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--limit", "2", "--image-resize",
                           "nearest", "--out", out, capsys=capsys)
    assert code == 0, err
    assert summary_of(out)["protocol"]["image_resize"] == "nearest"
    assert "resized nearest" in err  # the run says which resize it used


def test_summary_table_shows_method_labels_whole(dataset, tmp_path, capsys):
    # Bracketed overrides look like rich markup and a pipe looks 80 columns wide: neither may
    # shorten a label, or two variants of a method become indistinguishable in a log.
    code, stdout, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse[scale=0.5],ellipse",
                                "--compare", "grabcut", "--limit", "1", "--out", tmp_path / "out", capsys=capsys)
    assert code == 0, err
    rows = [line for line in stdout.splitlines() if "ellipse" in line or "grabcut" in line]
    assert any("ellipse[scale=0.5]" in line for line in rows), stdout
    assert any("grabcut " in line for line in rows), stdout
    assert "…" not in stdout


# ----------------------------------------------------------------------------- several datasets: a suite

@pytest.fixture(scope="module")
def suite(dataset, tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two sets of different kinds (the discs, and the same images flipped with 5 removed) run as one suite."""
    base = tmp_path_factory.mktemp("suite")
    first, second = base / "discs", base / "flipped"
    shutil.copytree(dataset, first)
    shutil.copytree(dataset, second)
    for folder in ("images", "masks"):
        for path in sorted((second / folder).iterdir())[:5]:
            path.unlink()
        for path in (second / folder).iterdir():
            with Image.open(path) as image:
                image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    out = base / "run"
    code, _, _ = run_cli("eval", f"folder:{first}", f"folder:{second}", "--methods", "colour",
                         "--compare", "ellipse,grabcut", "--out", out)
    assert code == 0
    return first, second, out


def test_a_suite_names_each_set_in_rows_and_summary(suite):
    first, second, out = suite
    rows = rows_of(out)
    assert {(r["dataset"], r["method"]) for r in rows} == {
        (name, m) for name in ("discs", "flipped") for m in ("colour", "ellipse", "grabcut")}
    assert sum(r["dataset"] == "discs" for r in rows) == 3 * 12 and sum(r["dataset"] == "flipped" for r in rows) == 3 * 7
    summary = summary_of(out)
    assert summary["format_version"] == 3
    assert [d["name"] for d in summary["datasets"]] == ["discs", "flipped"]
    assert [d["images"] for d in summary["datasets"]] == [12, 7]
    for r in summary["results"]:
        mine = [float(row["iou"]) for row in rows if row["dataset"] == r["dataset"] and row["method"] == r["method"]]
        assert r["iou"] == pytest.approx(np.mean(mine), abs=1e-6)
        # Held out = outside the selection subset (index % 3 != 0 in split order).
        outside = [float(row["iou"]) for row in rows if row["dataset"] == r["dataset"]
                   and row["method"] == r["method"] and int(row["index"]) % 3]
        assert r["held_out"]["images"] == len(outside) and r["held_out"]["iou"] == pytest.approx(np.mean(outside), abs=1e-6)


def test_a_suite_reports_the_mean_over_sets_and_paired_differences(suite):
    _, _, out = suite
    summary = summary_of(out)
    rows = rows_of(out)
    per_set = {(r["dataset"], r["method"]): r["iou"] for r in summary["results"]}
    for m in summary["mean_over_sets"]:
        assert m["sets"] == 2
        assert m["iou"] == pytest.approx((per_set[("discs", m["method"])] + per_set[("flipped", m["method"])]) / 2)
    paired = {(p["dataset"], p["method"]): p for p in summary["paired"]}
    assert set(paired) == {(s, m) for s in ("discs", "flipped", "all sets") for m in ("ellipse", "grabcut")}
    assert all(p["against"] == "colour" for p in paired.values())
    for dataset in ("flipped", "all sets"):
        score = {(r["dataset"], r["id"], r["method"]): float(r["iou"]) for r in rows
                 if dataset == "all sets" or r["dataset"] == dataset}
        diffs = np.array([score[(d, i, "grabcut")] - score[(d, i, "colour")] for d, i, m in score if m == "colour"])
        got = paired[(dataset, "grabcut")]["iou"]
        assert got["images"] == len(diffs)
        assert got["mean"] == pytest.approx(diffs.mean(), abs=1e-9)
        assert got["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(len(diffs)), abs=1e-9)


def test_a_suite_prints_a_table_per_set_the_mean_and_the_differences(suite, capsys):
    first, second, out = suite
    code, stdout, _ = run_cli("eval", f"folder:{first}", f"folder:{second}", "--methods", "colour",
                              "--compare", "ellipse,grabcut", "--out", out, "--resume", capsys=capsys)
    assert code == 0
    assert "discs: IoU" in stdout and "flipped: IoU" in stdout and "mean over 2 sets" in stdout
    assert "paired per-image IoU difference against colour" in stdout and "all sets" in stdout


def test_two_sets_with_the_same_name_are_refused(dataset, tmp_path, capsys):
    other = tmp_path / dataset.name
    shutil.copytree(dataset, other)
    code, _, err = run_cli("eval", f"folder:{dataset}", f"folder:{other}", "--methods", "ellipse",
                           "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and "two datasets share a name" in err
    assert not (tmp_path / "run").exists()


def test_subsets_split_the_images_into_selection_and_held_out(dataset, tmp_path, capsys):
    ids = {}
    for subset in ("selection", "held-out"):
        out = tmp_path / subset
        code, _, _ = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--subset", subset, "--out", out)
        assert code == 0
        rows = rows_of(out)
        ids[subset] = {r["id"] for r in rows}
        assert all((int(r["index"]) % 3 == 0) == (subset == "selection") for r in rows)
    assert ids["selection"] == {f"disc{i:02d}" for i in range(0, 12, 3)}
    assert ids["selection"] | ids["held-out"] == {f"disc{i:02d}" for i in range(12)}
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--subset", "held-out", "--stride", "2",
                           "--out", tmp_path / "bad", capsys=capsys)
    assert code == 2 and "--subset and --stride" in err and not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- --resume trusts nothing it did not write

@pytest.fixture
def small_run(dataset, tmp_path) -> tuple[Path, list[str]]:
    out = tmp_path / "run"
    argv = ["eval", f"folder:{dataset}", "--methods", "ellipse", "--limit", "4", "--out", str(out)]
    code, _, _ = run_cli(*argv)
    assert code == 0
    return out, argv


def _set_field(text: str, line: int, field: int, value: str) -> str:
    lines = text.splitlines(keepends=True)
    cells = lines[line].rstrip("\n").split(",")
    cells[field] = value
    lines[line] = ",".join(cells) + "\n"
    return "".join(lines)


@pytest.mark.parametrize("damage, expected", [
    (lambda text: _set_field(text, 2, 5, "abc"), "line 3: iou 'abc' is not a number"),
    (lambda text: b"\xff\xfe\x00garbage" * 20, "not UTF-8 text"),
    (lambda text: "foo,bar\n1,2\n", "header 'foo,bar' is not this version's"),
    (lambda text: _set_field(text, 2, 5, "nan"), "is not a fraction in [0, 1]"),
    (lambda text: _set_field(text, 1, 6, "inf"), "is not a fraction in [0, 1]"),
    (lambda text: _set_field(text, 2, 4, "disc\x0001"), "a NUL character"),
])
def test_resume_refuses_a_results_file_it_did_not_write(small_run, capsys, damage, expected):
    out, argv = small_run
    path = out / "results.csv"
    damaged = damage(path.read_text())
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    before = path.read_bytes()
    code, _, err = run_cli(*argv, "--resume", capsys=capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("changed", [["--seed", "1"], ["--image-resize", "nearest"]])
def test_resume_refuses_other_settings(small_run, capsys, changed):
    out, argv = small_run
    code, _, err = run_cli(*argv, "--resume", *changed, capsys=capsys)
    assert code == 2 and "was run with other settings" in err


def test_resume_reports_what_the_command_asks_for(small_run):
    out, argv = small_run
    code, _, _ = run_cli(*[a if a != "4" else "2" for a in argv], "--resume")
    assert code == 0
    (result,) = summary_of(out)["results"]
    assert result["images"] == 2 and len(rows_of(out)) == 4   # rows kept, summary of the 2 asked for


def test_eval_never_overwrites_a_users_files_in_out(dataset, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.json").write_text("my own notes")
    (out / "noise.png").write_bytes(b"my plot")
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--limit", "2", "--out", out,
                           capsys=capsys)
    assert code == 2 and "did not write" in err
    assert (out / "summary.json").read_text() == "my own notes" and (out / "noise.png").read_bytes() == b"my plot"
    assert sorted(p.name for p in out.iterdir()) == ["noise.png", "summary.json"]


def test_ctrl_c_keeps_the_rows_and_says_how_to_resume(dataset, tmp_path, capsys, monkeypatch):
    import segtool.evaluation.runner

    def interrupted(plan, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(segtool.evaluation.runner, "run_eval", interrupted)
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--out", tmp_path / "run", capsys=capsys)
    last = err.strip().splitlines()[-1]
    assert code == 130 and last.startswith("segtool: interrupted") and "--resume" in last


def test_masks_of_zeros_and_ones_are_binary_and_empty_masks_are_named(tmp_path, capsys):
    root = tmp_path / "labels01"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:48, :64]
    for i in range(3):
        image = np.full((48, 64, 3), 30, np.uint8)
        disc = (yy - 24) ** 2 + (xx - 32) ** 2 < 150
        image[disc] = (230, 200, 60)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        Image.fromarray((disc if i < 2 else np.zeros_like(disc)).astype(np.uint8)).save(root / "masks" / f"im{i}.png")
    code, _, err = run_cli("eval", f"folder:{root}", "--methods", "ellipse", "--out", tmp_path / "run", capsys=capsys)
    assert code == 0
    rows = {r["id"]: r for r in rows_of(tmp_path / "run")}
    assert float(rows["im0"]["truth_fraction"]) > 0.05 and float(rows["im0"]["iou"]) > 0.2
    assert "1 ground-truth mask(s) are empty (im2)" in err


@pytest.mark.parametrize("spec, expected", [
    ("colour-pipeline[threshold=abc]", "threshold must be a finite number"),
    ("colour-pipeline[min_part=abc]", "min_part must be a finite number"),
    ("colour-pipeline[n_init=0]", "n_init must be in [1, 100]"),
    ("colour-pipeline[k=2.5]", "k must be a whole number"),
    ("colour-pipeline[fill_holes=maybe]", "fill_holes must be true or false"),
    ("colour-pipeline[consensus=[2,abc]]", "consensus entry must be a whole number"),
    ("grabcut[iterations=abc]", "iterations must be a whole number"),
    ("grabcut[inset=0.9]", "inset must be in [0, 0.45]"),
    ("ellipse[scale=0]", "scale must be above 0"),
    ("colour[grid=abc]", "grid must be a whole number"),
])
def test_every_method_override_is_checked_before_any_image_is_read(dataset, tmp_path, capsys, spec, expected):
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", spec, "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_workers_change_the_seconds_and_nothing_else(dataset, tiny_model, tmp_path):
    common = [f"folder:{dataset}", "--model", tiny_model, "--compare", "grabcut", "--batch-size", "5"]
    for workers in (1, 3):
        assert run_cli("eval", *common, "--workers", workers, "--out", tmp_path / f"w{workers}")[0] == 0
    assert _without_timings(rows_of(tmp_path / "w3")) == _without_timings(rows_of(tmp_path / "w1"))
    assert _without_timings(summary_of(tmp_path / "w3")) == _without_timings(summary_of(tmp_path / "w1"))


def _without_timings(value):
    """Everything but the timings, which belong to whichever process ran an image."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in ("seconds", "seconds_per_image")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


@pytest.mark.parametrize("subset", ["all", "held-out"])
def test_shards_merge_into_the_files_of_the_unsharded_run(dataset, tmp_path, capsys, subset):
    common = [f"folder:{dataset}", "--methods", "colour", "--compare", "ellipse", "--noise", "0,0.2",
              "--batch-size", "4", "--subset", subset]
    assert run_cli("eval", *common, "--out", tmp_path / "whole")[0] == 0
    for i in range(3):
        assert run_cli("eval", *common, "--shard", f"{i}/3", "--out", tmp_path / "parts")[0] == 0
    shards = sorted((tmp_path / "parts").glob("shard-*"))
    assert [p.name for p in shards] == ["shard-0-of-3", "shard-1-of-3", "shard-2-of-3"]
    assert all(0 < len(rows_of(p)) < len(rows_of(tmp_path / "whole")) for p in shards)
    code, out, _ = run_cli("eval-merge", *shards, "--out", tmp_path / "merged", capsys=capsys)
    assert code == 0
    assert _without_timings(rows_of(tmp_path / "merged")) == _without_timings(rows_of(tmp_path / "whole"))
    assert _without_timings(summary_of(tmp_path / "merged")) == _without_timings(summary_of(tmp_path / "whole"))
    assert json.loads((tmp_path / "merged" / "run.json").read_text()) == json.loads((tmp_path / "whole" / "run.json").read_text())


def test_a_merge_refuses_missing_unfinished_or_foreign_shards(dataset, tmp_path, capsys):
    common = [f"folder:{dataset}", "--methods", "ellipse", "--out", tmp_path / "parts"]
    for i in range(2):
        assert run_cli("eval", *common, "--shard", f"{i}/2")[0] == 0
    assert run_cli("eval", f"folder:{dataset}", "--methods", "colour", "--shard", "1/2", "--out", tmp_path / "other")[0] == 0
    first, second = tmp_path / "parts" / "shard-0-of-2", tmp_path / "parts" / "shard-1-of-2"
    cases = [([first], "shard(s) 1/2 missing"),
             ([first, tmp_path / "other" / "shard-1-of-2"], "run with other settings"),
             ([first, first], "given twice")]
    for folders, expected in cases:
        code, _, err = run_cli("eval-merge", *folders, "--out", tmp_path / "merged", capsys=capsys)
        assert code == 2 and expected in err, err
    (second / "summary.json").unlink()
    code, _, err = run_cli("eval-merge", first, second, "--out", tmp_path / "merged", capsys=capsys)
    assert code == 2 and "has not finished" in err
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("shard", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_a_bad_shard_is_one_line(dataset, tmp_path, capsys, shard):
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--shard", shard,
                           "--out", tmp_path / "run", capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "--shard" in err


@pytest.fixture(scope="module")
def reported(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reported") / "run"
    code, _, _ = run_cli("eval", f"folder:{dataset}", "--methods", "colour", "--compare", "ellipse", "--noise", "0,0.2",
                         "--report", "--save-masks", "--out", out)
    assert code == 0
    return out


def test_save_masks_writes_every_mask_and_they_score_as_the_rows_say(reported, dataset):
    from segtool.evaluation.metrics import score_mask
    from segtool.evaluation.protocol import iem_crop
    from segtool.data.readers import open_dataset

    rows = rows_of(reported)
    reader = open_dataset(f"folder:{dataset}")
    samples = {s.id: s for s in reader.samples()}
    for row in rows:
        path = reported / "masks" / reader.name / row["method"] / f"sigma-{float(row['noise']):g}" / f"{row['id']}.png"
        mask = np.asarray(Image.open(path)) > 0
        _, truth = iem_crop(*reader.load(samples[row["id"]]), 128, "bilinear")
        assert score_mask(mask, truth).iou == pytest.approx(float(row["iou"]), abs=1e-6)


def test_the_report_shows_tables_curves_and_the_best_median_and_worst_images(reported):
    page = (reported / "report.html").read_text()
    assert f"<h2>{rows_of(reported)[0]['dataset']} (12 images)</h2>" in page
    assert page.count("<table>") >= 2 and "noise.png" in page
    for method in ("colour", "ellipse"):
        rows = [r for r in rows_of(reported) if r["method"] == method and float(r["noise"]) == 0]
        worst = min(rows, key=lambda r: (float(r["iou"]), r["id"]))
        best = max(rows, key=lambda r: (float(r["iou"]), r["id"]))
        assert f"worst: IoU {100 * float(worst['iou']):.1f} ({worst['id']})" in page
        assert f"best: IoU {100 * float(best['iou']):.1f} ({best['id']})" in page
        strip = np.asarray(Image.open(reported / "report" / best["dataset"] / f"{method}-best.png"))
        assert strip.shape[0] == 192 and strip.shape[1] == 3 * 192 + 8


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_report_renders_its_images_in_a_browser(reported):
    result = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                             "--virtual-time-budget=5000", "--dump-dom", (reported / "report.html").as_uri()],
                            capture_output=True, text=True, timeout=120)
    images = (reported / "report.html").read_text().count("<img ")
    assert f'data-images-loaded="{images}/{images}"' in result.stdout, result.stderr[-500:]


def test_json_prints_the_summary_file(dataset, tmp_path, capsys):
    code, out, _ = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--json", "--out", tmp_path / "run",
                           capsys=capsys)
    assert code == 0 and json.loads(out) == summary_of(tmp_path / "run")


def test_boundary_f_counts_outline_pixels_within_two_pixels():
    from segtool.evaluation.metrics import boundary_f

    truth = np.zeros((60, 60), bool)
    truth[10:50, 10:50] = True
    assert boundary_f(truth, truth) == 1.0
    near = np.roll(truth, 2, axis=1)       # every outline pixel within 2 px of the true one
    far = np.roll(truth, 6, axis=1)        # the vertical edges 6 px away: only parts of the horizontal ones match
    assert boundary_f(near, truth) == 1.0
    assert 0.3 < boundary_f(far, truth) < 0.8
    assert boundary_f(np.zeros_like(truth), truth) == 0.0
    assert boundary_f(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
    full = np.ones_like(truth)             # the image's edge is no outline
    assert boundary_f(full, full) == 1.0 and boundary_f(full, truth) == 0.0


def test_the_native_protocol_scores_each_image_at_its_own_size(dataset, tmp_path, capsys):
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--protocol", "native",
                           "--save-masks", "--out", tmp_path / "run", capsys=capsys)
    assert code == 0 and "each image at its own size" in err
    summary = summary_of(tmp_path / "run")
    assert summary["protocol"]["name"] == "native" and summary["protocol"]["size"] is None
    row = rows_of(tmp_path / "run")[0]
    saved = Image.open(next((tmp_path / "run" / "masks").rglob(f"{row['id']}.png")))
    assert saved.size == (64, 48)          # the image's own size, not the 128 crop
    from segtool.evaluation.metrics import boundary_f

    truth = np.asarray(Image.open(dataset / "masks" / f"{row['id']}.png")) > 127
    assert float(row["boundary_f"]) == pytest.approx(boundary_f(np.asarray(saved) > 0, truth), abs=1e-6)
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "--protocol", "crop",
                           "--out", tmp_path / "bad", capsys=capsys)
    assert code == 2 and "--protocol 'crop'" in err


def test_progress_moves_per_image_not_per_batch(dataset, tmp_path):
    from segtool.data.readers import open_dataset
    from segtool.evaluation.runner import EvalPlan, run_eval
    from segtool.pipeline.registry import build_segmenter, parse_method

    plan = EvalPlan([open_dataset(f"folder:{dataset}")], [("colour", build_segmenter(parse_method("colour")))],
                    [0.0, 0.1], limit=5, batch_size=32, out_dir=tmp_path / "run")
    seen = []
    run_eval(plan, progress=lambda done, total: seen.append((done, total)))
    counts = [done for done, _ in seen]
    assert counts == sorted(counts) and set(counts) == set(range(0, 11)) and {total for _, total in seen} == {10}


def test_default_output_folders_keep_set_names_whole():
    from segtool.cli.eval import default_out_dir

    one = default_out_dir(["ham10000-sample"]).name
    assert one.startswith("eval-ham10000-sample-")
    many = default_out_dir(["oxford17-flowers-seg", "ecssd-dev", "isic-lesions-128", "ham10000-sample"]).name
    assert many.startswith("eval-oxford17-flowers-seg+ecssd-dev+isic-lesions-128+1-more-")


def test_quiet_eval_prints_no_start_line(dataset, tmp_path, capsys):
    code, _, err = run_cli("eval", f"folder:{dataset}", "--methods", "ellipse", "-q", "--out", tmp_path / "run",
                           capsys=capsys)
    assert code == 0 and "evaluating" not in err
