"""The reliability requirement of `segtool segment` (and the argument checks of `segtool eval`):
every input a user may throw at it is either segmented right or refused with one line.

Exit codes: 0 all done, 1 some input failed (the others are still processed), 2 usage error.
Refused inputs leave no output file behind, and nothing is ever written over an input or over
a file segtool did not write.
"""

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import scvae
from segtool.cli.app import main
from segtool.io.images import load_image

from conftest import ROOT, run_cli, subprocess_env, tiny_config, tiny_model  # noqa: F401 (fixture)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_usage_error(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines(err)) == 1, err
    assert lines(err)[0].startswith("segtool: error: ")
    return lines(err)[0]


def assert_failed_inputs(code: int, err: str, count: int) -> list[str]:
    """Exit 1, one `failed ...` line per bad input, then the count line; returns the failure lines."""
    assert code == 1, err
    assert "Traceback" not in err
    failed = [line for line in lines(err) if line.startswith("failed ")]
    assert len(failed) == count, err
    assert lines(err)[-1].endswith(f"{count} failed"), err
    # Every line of stderr is a result line, a failure line or the count line: nothing wraps.
    assert all(line.startswith("failed ") or ": foreground " in line or line.endswith(" failed")
               for line in lines(err)), err
    return failed


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png")) if folder.exists() else []


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 4) ** 2
    image[disc] = (230, 200, 60)
    return image


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation  # Orientation tag
    return jpeg_bytes(image, exif=exif.tobytes())


def bomb_png() -> bytes:
    """A valid 16x16 PNG whose header claims 40000x40000 pixels (1.6 gigapixels), CRC fixed so
    that the file passes header validation and only decoding would reveal the lie."""
    buffer = io.BytesIO()
    Image.fromarray(textured(16, 16)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", 40000, 40000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# Valid inputs: segmented, mask at the size and orientation the user sees.

def _write_valid(kind: str, folder: Path) -> tuple[Path, tuple[int, int]]:
    """Writes one valid input; returns its path and the (width, height) viewers display."""
    rgb = textured(60, 40)  # stored 40 wide, 60 high
    if kind == "alpha":
        path = folder / "alpha.png"
        alpha = np.full((60, 40), 255, np.uint8)
        alpha[:, :10] = 0
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    elif kind == "grey":
        path = folder / "grey.png"
        Image.fromarray(rgb[..., 0]).save(path)
    elif kind == "16bit":
        path = folder / "deep.png"
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(path)
        assert Image.open(path).mode.startswith("I;16")
    elif kind == "cmyk":
        path = folder / "print.jpg"
        path.write_bytes(jpeg_bytes(Image.fromarray(rgb).convert("CMYK")))
    elif kind in ("exif6", "exif8"):
        path = folder / f"{kind}.jpg"
        path.write_bytes(with_orientation(rgb, int(kind[-1])))
        return path, (60, 40)  # rotated a quarter turn for display
    elif kind == "blank":
        path = folder / "blank.png"  # one colour: nothing to find, but not an error
        Image.fromarray(np.full((60, 40, 3), 128, np.uint8)).save(path)
    elif kind == "animated-gif":  # the first frame is segmented
        path = folder / "anim.gif"
        Image.fromarray(rgb).save(path, save_all=True, append_images=[Image.fromarray(rgb[::-1])])
    elif kind == "1bit":
        path = folder / "lineart.png"
        Image.fromarray(rgb[..., 0] > 100).save(path)
        assert Image.open(path).mode == "1"
    elif kind == "float-tiff":
        path = folder / "scan.tiff"
        Image.fromarray(rgb[..., 0].astype(np.float32)).save(path)
        assert Image.open(path).mode == "F"
    elif kind == "no-extension":  # named explicitly, any readable image works
        path = folder / "photo"
        Image.fromarray(rgb).save(path, format="PNG")
    elif kind == "10x5000":
        path = folder / "strip.png"
        Image.fromarray(textured(10, 5000)).save(path)
        return path, (5000, 10)
    else:
        raise AssertionError(kind)
    return path, (40, 60)


@pytest.mark.parametrize("kind", ["alpha", "grey", "16bit", "cmyk", "exif6", "exif8", "10x5000", "blank",
                                  "animated-gif", "1bit", "float-tiff", "no-extension"])
def test_valid_input_is_segmented_at_its_displayed_size(kind, tiny_model, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    path, (width, height) = _write_valid(kind, tmp_path / "in")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "segment", path, "--model", tiny_model, "--out", out)
    assert code == 0, err
    assert "Traceback" not in err
    mask = np.asarray(Image.open(out / f"{path.stem}_mask.png"))
    assert mask.shape == (height, width)
    assert set(np.unique(mask)) <= {0, 255}
    for kind_ in ("overlay", "clusters"):
        assert Image.open(out / f"{path.stem}_{kind_}.png").size == (width, height)


def test_valid_inputs_decode_to_the_right_pixels(tmp_path):
    # Transparent pixels are composited on white, not left black.
    path, _ = _write_valid("alpha", tmp_path)
    assert (load_image(path)[:, :10] == 255).all()
    # Greyscale comes back as three equal channels.
    path, _ = _write_valid("grey", tmp_path)
    grey = load_image(path)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    # 16 bits scale to 8 by the full 16-bit range ...
    path, _ = _write_valid("16bit", tmp_path)
    assert np.array_equal(load_image(path)[..., 0], textured(60, 40)[..., 0])
    # ... also when the values happen to be small: a dark 16-bit image stays dark.
    dark = tmp_path / "dark16.png"
    Image.fromarray(np.full((20, 20), 200, np.uint16)).save(dark)
    assert load_image(dark).max() <= 1
    # Float TIFFs: values 0..255 are taken as they are, values within [0, 1] as fractions.
    grey8 = textured(60, 40)[..., 0]
    for scale, name in ((1.0, "f255.tiff"), (1 / 255, "f1.tiff")):
        Image.fromarray(grey8.astype(np.float32) * np.float32(scale)).save(tmp_path / name)
        assert np.abs(load_image(tmp_path / name)[..., 0].astype(int) - grey8).max() <= 1
    # CMYK JPEG comes back in its RGB colours.
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[:, :12], rgb[:, 12:] = (200, 30, 40), (20, 180, 90)
    cmyk = tmp_path / "cmyk.jpg"
    cmyk.write_bytes(jpeg_bytes(Image.fromarray(rgb).convert("CMYK")))
    assert np.abs(load_image(cmyk).astype(int)[4:20, 2:8] - (200, 30, 40)).max() < 12
    assert np.abs(load_image(cmyk).astype(int)[4:20, 16:22] - (20, 180, 90)).max() < 12


def _marked(height=60, width=40) -> np.ndarray:
    """Dark image with a bright block in the stored top-left corner."""
    rgb = np.full((height, width, 3), 20, np.uint8)
    rgb[:20, :12] = 240
    return rgb


@pytest.mark.parametrize("orientation, corner", [(6, "top-right"), (8, "bottom-left")])
def test_exif_rotation_puts_the_mask_where_the_viewer_sees_the_object(orientation, corner, tmp_path, capsys,
                                                                      monkeypatch):
    # A stand-in segmenter whose mask is "the bright pixels", so the mask must follow the marked
    # block into its displayed corner: orientation 6 turns the stored top-left to the top-right,
    # orientation 8 to the bottom-left.
    import segtool.pipeline.registry
    from segtool.pipeline.segmenters import SegmentResult, Segmenter

    class Bright(Segmenter):
        def segment(self, image):
            return SegmentResult(image.mean(axis=2) > 128)

    monkeypatch.setattr(segtool.pipeline.registry, "build_segmenter", lambda *a, **k: Bright())
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    path.write_bytes(with_orientation(_marked(), orientation))
    code, _, err = run_cli(capsys, "segment", path, "--out", tmp_path / "out")
    assert code == 0, err
    mask = np.asarray(Image.open(tmp_path / "out" / "photo_mask.png")) > 127
    assert mask.shape == (40, 60)  # displayed: 60 wide, 40 high
    expected = np.zeros((40, 60), bool)
    if corner == "top-right":
        expected[:12, -20:] = True
    else:
        expected[-12:, :20] = True
    assert (mask == expected).mean() > 0.97


# ---------------------------------------------------------------------------------------------
# Refused inputs: exit 1, one line naming the file and the reason, no output file.

def _write_bad(kind: str, folder: Path) -> Path:
    if kind == "empty":
        path = folder / "empty.png"
        path.write_bytes(b"")
    elif kind == "truncated-jpeg":
        path = folder / "cut.jpg"
        data = jpeg_bytes(Image.fromarray(textured(64, 64)))
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text-as-jpg":
        path = folder / "notes.jpg"
        path.write_text("not an image, just text\n")
    elif kind == "directory":
        path = folder / "x.png"
        path.mkdir()
    elif kind == "1x1":
        path = folder / "dot.png"
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    elif kind == "bomb":
        path = folder / "bomb.png"
        path.write_bytes(bomb_png())
    elif kind == "missing":
        path = folder / "nowhere.png"
    elif kind == "broken-link":
        path = folder / "moved.png"
        path.symlink_to(folder / "gone.png")
    elif kind == "link-loop":
        path = folder / "loop.png"
        (folder / "other.png").symlink_to(path)
        path.symlink_to(folder / "other.png")
    else:
        raise AssertionError(kind)
    return path


BAD = {
    "empty": "empty file",
    "truncated-jpeg": "truncated or corrupt",
    "text-as-jpg": "not an image file",
    "directory": "folder holds no image files",
    "1x1": "too small to segment",
    "bomb": "--max-pixels",
    "missing": "no such file",
    "broken-link": "broken symbolic link",
    "link-loop": "symbolic link loop",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_is_refused_with_one_line(kind, tiny_model, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    path = _write_bad(kind, tmp_path / "in")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "segment", path, "--model", tiny_model, "--out", out)
    (line,) = assert_failed_inputs(code, err, 1)
    assert str(path) in line and BAD[kind] in line
    assert pngs(out) == []


def test_decompression_bomb_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    # Decoding would allocate gigabytes: the refusal must come from the header alone.
    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded a decompression bomb"))
        code, _, err = run_cli(capsys, "segment", path, "--out", tmp_path / "out")
    (line,) = assert_failed_inputs(code, err, 1)
    assert "40000x40000" in line and "100,000,000" in line and "--max-pixels" in line

    # Trusting the file with a higher limit gets past the check; decoding then finds the lie.
    code, _, err = run_cli(capsys, "segment", path, "--out", tmp_path / "out", "--max-pixels", 2_000_000_000)
    (line,) = assert_failed_inputs(code, err, 1)
    assert "truncated or corrupt" in line and "--max-pixels" not in line
    # A small limit is stated exactly, not rounded to "0 megapixels".
    code, _, err = run_cli(capsys, "segment", path, "--out", tmp_path / "out", "--max-pixels", 50)
    (line,) = assert_failed_inputs(code, err, 1)
    assert "limit of 50 " in line


def test_folder_mixing_good_and_bad_files_as_a_user_runs_it(tiny_model, tmp_path):
    # A real process: the exit status and stderr exactly as a shell sees them.
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.fromarray(textured(48, 64, seed=len(name))).save(folder / name)
    bad = [_write_bad(kind, folder) for kind in ("empty", "truncated-jpeg", "text-as-jpg", "1x1", "bomb", "broken-link")]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "segtool", "segment", str(folder), "--model", tiny_model,
                           "--out", str(out)], capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
                          timeout=120)
    failed = assert_failed_inputs(proc.returncode, proc.stderr, len(bad))
    assert lines(proc.stderr)[-1] == f"2 segmented, {len(bad)} failed"
    for path in bad:
        assert sum(str(path) in line for line in failed) == 1
    assert pngs(out) == sorted(f"{s}_{k}.png" for s in ("a", "b") for k in ("clusters", "mask", "overlay"))


def test_parse_errors_are_one_line_with_exit_2_as_a_user_runs_it():
    for argv in (["segment", "x.png", "--k", "abc"], ["segment", "x.png", "--no-such-option"], ["segment"],
                 ["no-such-command"]):
        proc = subprocess.run([sys.executable, "-m", "segtool", *argv], capture_output=True, text=True,
                              env=subprocess_env(), cwd=ROOT, timeout=60)
        line = assert_usage_error(proc.returncode, proc.stderr)
        assert "--help" in line


def test_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGTOOL_DEBUG", "0")  # --debug sets it to 1; monkeypatch removes it afterwards
    code, _, err = run_cli(capsys, "--debug", "segment", tmp_path, "--k", "0")
    assert code == 2
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("segtool: error: --k 0")


# ---------------------------------------------------------------------------------------------
# Where outputs go: never over an input, never over a user's file, never half written.

@pytest.fixture()
def one_image(tmp_path) -> Path:
    path = tmp_path / "in" / "cat.png"
    path.parent.mkdir()
    Image.fromarray(textured(48, 64)).save(path)
    return path


def test_unwritable_out_is_a_usage_error(one_image, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a 0o500 folder is still writable")
        code, _, err = run_cli(capsys, "segment", one_image, "--out", locked / "sub")
        line = assert_usage_error(code, err)
        assert "cannot write" in line
    finally:
        locked.chmod(0o700)


def test_out_pointing_at_an_existing_file_is_refused(one_image, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("precious\n")
    code, _, err = run_cli(capsys, "segment", one_image, "--out", target)
    assert "is a file" in assert_usage_error(code, err)
    assert target.read_text() == "precious\n"


@pytest.mark.parametrize("command", ["segment", "eval"])
def test_out_that_is_a_link_loop_is_a_usage_error(command, one_image, tmp_path, capsys):
    loop = tmp_path / "loop"
    (tmp_path / "back").symlink_to(loop)
    loop.symlink_to(tmp_path / "back")
    if command == "segment":
        target = [one_image]
    else:  # a valid one-image dataset, so that --out is what is wrong
        for sub in ("images", "masks"):
            (tmp_path / "set" / sub).mkdir(parents=True)
        Image.fromarray(textured(32, 32)).save(tmp_path / "set" / "images" / "a.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "set" / "masks" / "a.png")
        target = ["folder:" + str(tmp_path / "set"), "--methods", "ellipse"]
    code, _, err = run_cli(capsys, command, *target, "--out", loop)
    assert "link loop" in assert_usage_error(code, err)


@pytest.mark.parametrize("where", ["input folder", "the image itself", "folder of a globbed image"])
def test_out_pointing_at_the_input_is_refused(where, one_image, capsys):
    folder = one_image.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    spec, out = {"input folder": (folder, folder), "the image itself": (one_image, one_image),
                 "folder of a globbed image": (f"{folder}/*.png", folder)}[where]
    code, _, err = run_cli(capsys, "segment", spec, "--out", out)
    assert_usage_error(code, err)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("k", ["0", "1"])
def test_k_below_two_is_a_usage_error(k, one_image, tmp_path, capsys):
    code, _, err = run_cli(capsys, "segment", one_image, "--k", k, "--out", tmp_path / "out")
    assert f"--k {k}" in assert_usage_error(code, err)
    assert not (tmp_path / "out").exists()


def test_k_larger_than_the_code_grid_fails_the_image_clearly(one_image, tiny_model, tmp_path, capsys):
    # The grid is known only once the model is loaded (about 32x32 cells for a d=3 model).
    code, _, err = run_cli(capsys, "segment", one_image, "--k", "5000", "--model", tiny_model, "--out",
                           tmp_path / "out")
    (line,) = assert_failed_inputs(code, err, 1)
    assert "--k" in line and "5000" in line and "cells" in line
    assert pngs(tmp_path / "out") == []


def test_unknown_clustering_method_is_a_usage_error(one_image, tmp_path, capsys):
    code, _, err = run_cli(capsys, "segment", one_image, "--method", "dbscan", "--out", tmp_path / "out")
    assert "--clustering 'dbscan'" in assert_usage_error(code, err)  # --method is the older name of --clustering


@pytest.mark.parametrize("argv, expected", [
    (["eval", "folder:{tmp}", "--noise", "-0.1"], "sigma must be"),
    (["eval", "folder:{tmp}", "--noise", "0,abc"], "not a number"),
    (["eval", "no-such-set"], "unknown dataset 'no-such-set'"),
    (["eval", "flowers"], "--data-root"),
    (["eval", "folder:{tmp}", "--methods", "magic"], "unknown method 'magic'"),
    (["eval", "folder:{tmp}", "--compare", "grabcut,grabcut"], "listed twice"),
    (["eval", "folder:{tmp}", "--image-resize", "cubic"], "--image-resize"),
])
def test_eval_usage_errors(argv, expected, tmp_path, capsys):
    code, _, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert expected in assert_usage_error(code, err)


def test_a_users_file_is_never_overwritten_but_own_outputs_are(one_image, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    users = out / "cat_mask.png"
    users.write_bytes(b"the user's own mask")
    code, _, err = run_cli(capsys, "segment", one_image, "--model", tiny_model, "--out", out)
    (line,) = assert_failed_inputs(code, err, 1)
    assert "cat_mask.png" in line and "not written by segtool" in line
    assert users.read_bytes() == b"the user's own mask"
    assert pngs(out) == ["cat_mask.png"]  # no overlay or cluster map without its mask

    users.unlink()
    for _ in range(2):  # the second run replaces what the first wrote
        code, _, err = run_cli(capsys, "segment", one_image, "--model", tiny_model, "--out", out)
        assert code == 0, err
    assert pngs(out) == ["cat_clusters.png", "cat_mask.png", "cat_overlay.png"]


def test_same_stem_in_two_folders_gets_two_output_names(tiny_model, tmp_path, capsys):
    for folder, seed in (("left", 1), ("right", 2)):
        (tmp_path / folder).mkdir()
        Image.fromarray(textured(48, 64, seed)).save(tmp_path / folder / "img.png")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "segment", tmp_path / "left" / "img.png", tmp_path / "right" / "img.png",
                           "--model", tiny_model, "--out", out)
    assert code == 0, err
    masks = [name for name in pngs(out) if name.endswith("_mask.png")]
    assert len(masks) == 2 and masks[0] != masks[1]


def test_no_installed_default_model_says_to_pass_model(one_image, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scvae, "available_models", lambda: [])  # a copy of scvae without shipped weights
    code, _, err = run_cli(capsys, "segment", one_image, "--out", tmp_path / "out")
    assert code == 1 and "Traceback" not in err
    (line,) = lines(err)
    assert line.startswith("segtool: error: ") and "--model" in line
    assert pngs(tmp_path / "out") == []


def test_missing_model_path_is_one_line(one_image, tmp_path, capsys):
    code, _, err = run_cli(capsys, "segment", one_image, "--model", tmp_path / "no-such-model", "--out",
                           tmp_path / "out")
    assert code == 1 and "Traceback" not in err
    (line,) = lines(err)
    assert "no-such-model" in line


@pytest.mark.parametrize("argv", [["segment", "x.jpg", "--k", "0"], ["segment", "x.jpg", "--device", "tpu"],
                                  ["segment", "x.jpg", "--clustering", "foo"], ["eval", "folder:x", "--methods", "foo"],
                                  ["eval", "cub"], ["eval", "folder:x", "--noise", "-1"],
                                  ["eval", "folder:x", "--subset", "half"], ["eval", "cub200"],
                                  ["segment", "x.jpg", "--only-mask", "--cutout"], ["segment", "x.jpg", "-q", "-v"],
                                  ["segment", "x.jpg", "--watch"], ["segment", "x.jpg", "-o", "-", "--json"],
                                  ["segment", "x.jpg", "--no-cache", "--cache-dir", "c"],
                                  ["segment", "x.jpg", "--precision", "half"], ["eval", "folder:x", "--precision", "fp8"],
                                  ["eval", "folder:x", "--no-cache", "--cache-dir", "c"], ["serve", "--port", "70000"],
                                  ["serve", "--workers", "0"], ["serve", "--max-upload-mb", "0"],
                                  ["segment", "x.jpg", "--workers", "0"], ["eval", "folder:x", "--workers", "0"],
                                  ["serve", "--method", "magic"], ["serve", "--device", "tpu"],
                                  ["train", "small-cpu", "--set", "model.d=banana", "--dry-run"],
                                  ["train", "small-cpu", "--set", "train.lr=-1"], ["train", "small-cpu", "--set", "data.holdout=-3"]])
def test_a_bad_option_is_refused_before_torch_or_sklearn_load(argv):
    """Options are checked before any heavy import: a typo is answered at once, not after seconds."""
    code = ("import sys\nfrom segtool.cli.app import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code)\nprint(sorted(m for m in ('torch', 'sklearn', 'cv2') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["exit 2", "[]"], proc.stdout + proc.stderr
