"""`segtool segment`'s outputs: standard output, cut-outs, mask only, overlay colour, output names,
per-image progress and lines, the code cache flags, and a watched folder."""

import io
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segtool.segment_files import output_stems, segment_files

from conftest import PYTHON, ROOT, run_cli, subprocess_env, tiny_model  # noqa: F401 (fixture)


def disc_image(height: int, width: int, seed: int = 0, colour=(240, 210, 70)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 70, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    image[(yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 4) ** 2] = colour
    return image


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    Image.fromarray(disc_image(50, 70)).save(path, quality=95)
    return path


def test_stdin_to_stdout_round_trip_through_a_shell_pipe(photo, tiny_model, tmp_path):
    """`cat a.jpg | segtool segment - -o - > m.png`: m.png is the mask, nothing else is on stdout."""
    mask_file = tmp_path / "m.png"
    command = (f"cat {shlex.quote(str(photo))} | {shlex.quote(PYTHON)} -m segtool segment - -o - "
               f"--model {shlex.quote(tiny_model)} > {shlex.quote(str(mask_file))}")
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    mask = Image.open(mask_file)
    mask.load()
    assert mask.format == "PNG" and mask.mode == "L" and mask.size == (70, 50)
    values = set(np.unique(np.asarray(mask)).tolist())
    assert values == {0, 255}
    assert lines(proc.stderr) == ["1 segmented -> standard output"]   # messages on stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "m.png"]   # no output folder written


def test_cutout_to_stdout_and_one_image_only(photo, tiny_model, tmp_path):
    argv = [PYTHON, "-m", "segtool", "segment", str(photo), "-o", "-", "--cutout", "--model", tiny_model]
    proc = subprocess.run(argv, capture_output=True, env=subprocess_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    cutout = Image.open(io.BytesIO(proc.stdout))
    assert cutout.mode == "RGBA" and cutout.size == (70, 50)
    alpha = np.asarray(cutout)[..., 3]
    assert set(np.unique(alpha).tolist()) == {0, 255}

    other = photo.parent / "other.jpg"
    Image.fromarray(disc_image(40, 40, 1)).save(other)
    two = subprocess.run([PYTHON, "-m", "segtool", "segment", str(photo.parent), "-o", "-"], capture_output=True,
                         text=True, env=subprocess_env(), cwd=tmp_path, timeout=120)
    assert two.returncode == 2 and two.stdout == ""
    (line,) = lines(two.stderr)
    assert line.startswith("segtool: error: --out -") and "2 images" in line


def test_cutout_and_only_mask_files(photo, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "segment", photo, "-o", out, "--cutout", "--model", tiny_model)
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["photo_clusters.png", "photo_cutout.png", "photo_mask.png",
                                                        "photo_overlay.png"]
    cutout = np.asarray(Image.open(out / "photo_cutout.png"))
    mask = np.asarray(Image.open(out / "photo_mask.png"))
    image = np.asarray(Image.open(photo).convert("RGB"))
    assert cutout.shape == (50, 70, 4)
    assert np.array_equal(cutout[..., 3], mask)                      # transparent exactly off the mask
    assert np.array_equal(cutout[..., :3], image)                    # the photo's own pixels

    only = tmp_path / "only"
    code, _, err = run_cli(capsys, "segment", photo, "-o", only, "--only-mask", "--model", tiny_model)
    assert code == 0, err
    assert sorted(p.name for p in only.iterdir() if not p.name.startswith(".")) == ["photo_mask.png"]


def test_overlay_colour_contrasts_with_the_subject():
    from segtool.io.outputs import OUTLINE_COLOURS, contrasting_colour, overlay_image

    yy, xx = np.mgrid[:60, :60]
    mask = (yy - 30) ** 2 + (xx - 30) ** 2 < 15 ** 2
    chosen = {}
    for name, subject in (("red", (230, 30, 30)), ("green", (40, 220, 40)), ("yellow", (250, 225, 10))):
        image = np.full((60, 60, 3), 128, np.uint8)
        image[mask] = subject
        colour = contrasting_colour(image, mask)
        chosen[name] = colour
        # Not a colour close to the subject's: every candidate nearer in RGB than the chosen one is skipped.
        assert np.abs(np.array(colour) - subject).sum() > 200, (name, colour)
        overlay = overlay_image(image, mask)
        assert tuple(overlay[30, 15 + 0]) == colour or tuple(overlay[30, 16]) == colour   # the outline
        centre = overlay[30, 30].astype(int)
        assert np.abs(centre - subject).max() < 0.35 * 255   # a light tint: the subject stays visible
        assert tuple(overlay[2, 2]) == (128, 128, 128)        # the background is untouched
    assert len(set(chosen.values())) > 1 and all(tuple(c) in map(tuple, OUTLINE_COLOURS) for c in chosen.values())


def test_output_names_get_the_folder_only_on_a_clash_of_stems():
    a, b = Path("a/img.jpg"), Path("b/img.jpg")
    assert output_stems([a]) == {a: "img"}
    other = Path("b/other.png")
    assert output_stems([a, other]) == {a: "img", other: "other"}      # no clash: plain stems
    third = Path("c/x.png")
    assert output_stems([a, b, third]) == {a: "a_img", b: "b_img", third: "x"}  # only the clashing stem
    same_folder = Path("a/img.png")
    assert output_stems([a, same_folder]) == {a: "a_img", same_folder: "a_img-2"}


def test_clashing_stems_on_the_command_line(tiny_model, tmp_path, capsys):
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        Image.fromarray(disc_image(40, 48, seed)).save(tmp_path / folder / "img.jpg")
    alone = tmp_path / "alone"
    code, _, err = run_cli(capsys, "segment", tmp_path / "a" / "img.jpg", "-o", alone, "--only-mask", "--model", tiny_model)
    assert code == 0, err
    assert [p.name for p in alone.glob("*.png")] == ["img_mask.png"]
    both = tmp_path / "both"
    code, _, err = run_cli(capsys, "segment", tmp_path / "a" / "img.jpg", tmp_path / "b" / "img.jpg", "-o", both,
                           "--only-mask", "--model", tiny_model)
    assert code == 0, err
    assert sorted(p.name for p in both.glob("*.png")) == ["a_img_mask.png", "b_img_mask.png"]


def test_progress_moves_per_image_not_per_batch(tmp_path):
    from segtool.pipeline.segmenters import EllipseSegmenter

    for i in range(3):
        Image.fromarray(disc_image(40, 40, i)).save(tmp_path / f"p{i}.png")
    calls, rows = [], []
    report = segment_files([str(tmp_path)], EllipseSegmenter(), tmp_path / "out", batch_size=8,
                           progress=lambda done, total: calls.append((done, total)), on_image=rows.append,
                           kinds=("mask",))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]   # one step per image inside a single batch of 8
    assert [Path(r["input"]).name for r in rows] == ["p0.png", "p1.png", "p2.png"] and len(report.results) == 3


def test_verbose_prints_a_line_per_image_and_quiet_prints_nothing(tiny_model, tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(disc_image(40, 40, i)).save(folder / f"p{i}.png")
    code, stdout, err = run_cli(capsys, "segment", folder, "-o", tmp_path / "v", "-v", "--model", tiny_model)
    assert code == 0 and stdout == "", err
    per_image = [line for line in lines(err) if ": foreground " in line]
    assert len(per_image) == 2 and all(line.split(", ")[1].split(" s ->")[0].replace(".", "").isdigit()
                                       for line in per_image), err
    assert lines(err)[-1] == f"2 segmented -> {tmp_path / 'v'}"
    code, stdout, err = run_cli(capsys, "segment", folder, "-o", tmp_path / "q", "-q", "--model", tiny_model)
    assert code == 0 and stdout == "" and err == ""
    code, _, err = run_cli(capsys, "segment", folder, "-q", "-v")
    assert code == 2 and "choose one" in err


def test_cache_dir_on_segment_and_eval(photo, tiny_model, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, _, err = run_cli(capsys, "segment", photo, "-o", tmp_path / "o1", "--cache-dir", cache, "--model", tiny_model)
    assert code == 0, err
    assert len(list((cache / "codes").rglob("*.npy"))) == 1   # --cache-dir turns the cache on
    default_root = Path(__import__("os").environ["SEGTOOL_CACHE"])
    before = len(list(default_root.rglob("*.npy")))
    code, _, err = run_cli(capsys, "segment", photo, "-o", tmp_path / "o2", "--model", tiny_model)
    assert code == 0 and len(list(default_root.rglob("*.npy"))) == before   # segment caches only when asked

    data = tmp_path / "set"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    Image.fromarray(disc_image(64, 64)).save(data / "images" / "a.png")
    yy, xx = np.mgrid[:64, :64]
    Image.fromarray((((yy - 32) ** 2 + (xx - 32) ** 2 < 16 ** 2) * 255).astype(np.uint8)).save(data / "masks" / "a.png")
    eval_cache = tmp_path / "eval-cache"
    code, _, err = run_cli(capsys, "eval", f"folder:{data}", "--methods", "scvae[k=2]", "--model", tiny_model,
                           "--out", tmp_path / "ev", "--cache-dir", eval_cache)
    assert code == 0, err
    assert len(list((eval_cache / "codes").rglob("*.npy"))) == 1


def test_cache_dir_values_are_refused_in_one_line(photo, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for argv in (["segment", photo, "--cache-dir", a_file], ["segment", photo, "--no-cache", "--cache-dir", tmp_path],
                 ["eval", "folder:x", "--cache-dir", a_file]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and len(lines(err)) == 1 and "--cache-dir" in err, err


def test_cache_dir_default_is_shown_in_help():
    for command in ("segment", "eval"):
        proc = subprocess.run([PYTHON, "-m", "segtool", command, "--help"], capture_output=True, text=True,
                              env={**subprocess_env(), "COLUMNS": "200"}, timeout=60)
        text = " ".join(proc.stdout.split())  # the help wraps at the terminal's width
        assert proc.returncode == 0 and "$SEGTOOL_CACHE, else ~/.cache/segtool" in text, proc.stdout


def test_watch_segments_existing_and_new_images_until_ctrl_c(tiny_model, tmp_path):
    folder, out = tmp_path / "inbox", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(disc_image(40, 48, 0)).save(folder / "before.png")
    argv = [PYTHON, "-m", "segtool", "segment", str(folder), "--watch", "-o", str(out), "--only-mask",
            "--model", tiny_model]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                            cwd=tmp_path)

    def wait_for(path: Path, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not path.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.2)

    try:
        wait_for(out / "before_mask.png")            # already there, no outputs yet
        staging = tmp_path / "arrival.png"           # written elsewhere, then moved in whole
        Image.fromarray(disc_image(56, 40, 3)).save(staging)
        staging.rename(folder / "arrival.png")
        wait_for(out / "arrival_mask.png")
        assert Image.open(out / "arrival_mask.png").size == (40, 56)
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stdout == ""
    assert lines(stderr)[-1] == f"segtool: stopped watching {folder}: 2 segmented, 0 failed"
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["arrival_mask.png", "before_mask.png"]


def test_watch_skips_images_that_already_have_outputs(tiny_model, tmp_path):
    from segtool.io.outputs import OutputDir
    from segtool.pipeline.segmenters import EllipseSegmenter
    from segtool.segment_files import watch_folder

    folder, out = tmp_path / "inbox", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(disc_image(40, 40, 0)).save(folder / "old.png")
    first = watch_folder(folder, EllipseSegmenter(), OutputDir(out, [folder]), kinds=("mask",), interval=0.01, polls=3)
    assert [Path(r["input"]).name for r in first.results] == ["old.png"]
    Image.fromarray(disc_image(40, 40, 1)).save(folder / "new.png")
    second = watch_folder(folder, EllipseSegmenter(), OutputDir(out, [folder]), kinds=("mask",), interval=0.01, polls=3)
    assert [Path(r["input"]).name for r in second.results] == ["new.png"]   # old.png's mask is current
    time.sleep(0.01)
    Image.fromarray(disc_image(40, 40, 2)).save(folder / "old.png")         # changed: segmented again
    third = watch_folder(folder, EllipseSegmenter(), OutputDir(out, [folder]), kinds=("mask",), interval=0.01, polls=3)
    assert [Path(r["input"]).name for r in third.results] == ["old.png"]


def test_watch_needs_one_folder(photo, tmp_path, capsys):
    code, _, err = run_cli(capsys, "segment", photo, "--watch")
    assert code == 2 and "--watch takes one folder" in err
    code, _, err = run_cli(capsys, "segment", photo.parent, "--watch", "-o", "-")
    assert code == 2 and len(lines(err)) == 1


def test_the_next_batch_is_read_while_this_one_is_segmented():
    import threading

    from segtool.segment_files import prefetched

    started, finished = {}, {}

    def load(batch):
        started[batch[0]] = time.monotonic()
        return [x * 10 for x in batch]

    out = []
    for i, loaded in enumerate(prefetched(load, [[0, 1], [2], [3, 4]])):
        time.sleep(0.2)  # the caller segmenting batch i
        finished[i] = time.monotonic()
        out.append(loaded)
    assert out == [[0, 10], [20], [30, 40]]
    assert started[2] < finished[0] and started[3] < finished[1]  # loaded during the previous batch's work

    def broken(batch):
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="decoder crashed"):
        list(prefetched(broken, [[1]]))
    assert not [t for t in threading.enumerate() if t.daemon is False and t is not threading.main_thread()]


def test_a_watch_started_with_sigint_ignored_still_stops_on_sigint_and_sigterm(tmp_path):
    """A watch launched in the background by a script inherits SIGINT ignored; it must still stop."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    for stop in (signal.SIGINT, signal.SIGTERM):
        argv = [PYTHON, "-m", "segtool", "segment", str(folder), "--watch", "-o", str(tmp_path / "out")]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        deadline = time.monotonic() + 60
        line = ""
        while "watching" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        proc.send_signal(stop)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "stopped watching" in stderr, stderr
