"""The paper's analyses as commands: `recon`, `explore`, `patches` and `segment --parts`, on tiny
random models and small synthetic images (quality is not the point; what is computed and written is)."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import scvae

from conftest import run_cli, tiny_config, tiny_model  # noqa: F401 (fixture)

SIZE = 32  # the tiny d=3 model gives a 4x4 code grid at 32x32


def textured(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colour gradient with a bright square and some noise: not flat, not random."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    image = np.stack([xx * 200 / width, yy * 200 / height, np.full_like(xx, 90.0)], axis=-1)
    image[height // 4:height // 2, width // 4:width // 2] = (250, 240, 40)
    return (image + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8)


@pytest.fixture()
def folder(tmp_path):
    path = tmp_path / "images"
    path.mkdir()
    for i in range(5):
        Image.fromarray(textured(40 + 4 * i, 48, seed=i)).save(path / f"img{i}.png")
    return path


@pytest.fixture(scope="module")
def second_model(tmp_path_factory) -> str:
    torch.manual_seed(7)
    return str(scvae.save_model(scvae.SCVAE(tiny_config(d=3)), tmp_path_factory.mktemp("second-model")))


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def export(module: torch.nn.Module, example: tuple, path) -> str:
    torch.export.save(torch.export.export(module, example), str(path))
    return str(path)


class MeanAbsoluteDistance(torch.nn.Module):
    """A stand-in for LPIPS: the mean absolute difference of two images in [-1, 1]."""

    def forward(self, x, y):
        return (x - y).abs().flatten(1).mean(1)


class ChannelMeans(torch.nn.Module):
    """A stand-in for Inception: per-channel means and spreads of an image in [0, 1] as features."""

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


# -- recon -----------------------------------------------------------------------------------------

def test_recon_compares_models_on_the_same_images(folder, tiny_model, second_model, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "recon", folder, "--model", tiny_model, "--model", second_model,
                                "--size", SIZE, "--out", out)
    assert code == 0, err
    rows = read_csv(out / "recon.csv")
    assert [r["model"] for r in rows] == [tiny_model, second_model]
    assert all(r["images"] == "5" and r["lpips"] == "n/a" and r["rfid"] == "n/a" for r in rows)
    # The numbers are the ones training's validation computes on the same crops (one code path).
    from segtool.analysis.image_sets import square_image, to_model_input
    from scvae.training.metrics import evaluate_reconstruction

    crops = np.stack([square_image(p, SIZE) for p in sorted(folder.iterdir())])
    expected = evaluate_reconstruction(scvae.load(tiny_model), to_model_input(crops))
    assert float(rows[0]["psnr"]) == pytest.approx(expected["val_psnr"], abs=1e-3)
    assert float(rows[0]["ssim"]) == pytest.approx(expected["val_ssim"], abs=1e-4)
    assert float(rows[0]["hoyer"]) == pytest.approx(expected["val_hoyer"], abs=1e-4)
    assert rows[0]["psnr"] != rows[1]["psnr"]  # two models, two results
    # Absent networks are said in one line each, never shown as numbers.
    assert "LPIPS n/a: no LPIPS network given" in err and "rFID n/a: no Inception network given" in err
    assert "n/a" in stdout
    grid = Image.open(out / "recon_grid.png")
    # 5 rows of (original + 2 models) tiles of 32 pixels, 4-pixel gaps, a 22-pixel header.
    assert grid.size == (3 * SIZE + 2 * 4, 22 + 5 * SIZE + 4 * 4)


def test_recon_holdout_takes_the_last_images_in_training_order(folder, tiny_model, tmp_path, capsys):
    from segtool.analysis.image_sets import choose_images

    code, _, err = run_cli(capsys, "recon", folder, "--holdout", 9, "--model", tiny_model, "--out", tmp_path / "o")
    assert code == 2 and "fewer than the 9 held out" in err
    assert [p.name for p in choose_images(str(folder), holdout=2)] == ["img3.png", "img4.png"]
    assert [p.name for p in choose_images(str(folder), holdout=3, limit=1)] == ["img2.png"]
    # folder:PATH reads its images/ as `eval` does (the masks beside them are not images to reconstruct).
    (folder.parent / "set" / "masks").mkdir(parents=True)
    (folder.parent / "set" / "masks" / "img0.png").write_bytes((folder / "img0.png").read_bytes())
    folder.rename(folder.parent / "set" / "images")
    assert len(choose_images(f"folder:{folder.parent / 'set'}")) == 5


def test_recon_uses_local_lpips_and_inception_networks(folder, tiny_model, tmp_path, capsys):
    image = torch.zeros(1, 3, SIZE, SIZE)
    # Two distinct example tensors: given one object twice, export would trace x - y as zero.
    lpips = export(MeanAbsoluteDistance(), (image, image.clone()), tmp_path / "lpips.pt2")
    inception = export(ChannelMeans(), (image,), tmp_path / "inception.pt2")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "recon", folder, "--model", tiny_model, "--size", SIZE, "--out", out,
                           "--lpips-weights", lpips, "--inception-weights", inception)
    assert code == 0, err
    row = read_csv(out / "recon.csv")[0]
    # The stand-in's distance computed directly on the model's reconstructions of the same crops.
    from segtool.analysis.image_sets import square_image, to_model_input

    model = scvae.load(tiny_model)
    x = to_model_input(np.stack([square_image(p, SIZE) for p in sorted(folder.iterdir())]))
    with torch.no_grad():
        recon = model(x).reconstruction.clamp(-1, 1)
    assert float(row["lpips"]) == pytest.approx(float((recon - x).abs().mean()), rel=2e-3)
    assert float(row["rfid"]) > 0
    assert "n/a" not in err


def test_a_file_that_is_not_an_exported_network_is_one_line(folder, tiny_model, tmp_path, capsys):
    bad = tmp_path / "lpips.pt2"
    bad.write_bytes(b"not a network")
    code, _, err = run_cli(capsys, "recon", folder, "--model", tiny_model, "--size", SIZE, "--out", tmp_path / "o",
                           "--lpips-weights", bad)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [f"segtool: error: {bad}: not a torch.export program of the LPIPS network "
                                        + err.split("LPIPS network ", 1)[1].strip()]


def test_frechet_distance_is_zero_for_one_set_and_the_squared_shift_for_a_moved_one():
    from segtool.analysis.perceptual import frechet_distance

    features = np.random.default_rng(0).normal(size=(200, 4))
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(features, features + [3, 0, 4, 0]) == pytest.approx(25, rel=1e-6)


# -- explore ---------------------------------------------------------------------------------------

def plain_reconstruction(model_path, picture):
    from segtool.analysis.codes import decode, encode

    model = scvae.load(model_path)
    return decode(model, encode(model, picture))[0]


def tiles(path, count, side=SIZE, gap=4):
    strip = np.asarray(Image.open(path).convert("RGB"))
    assert strip.shape[1] == count * (side + gap) - gap
    return [strip[:side, j * (side + gap):j * (side + gap) + side] for j in range(count)]


def test_interpolate_writes_a_strip_from_one_image_to_the_other(folder, tiny_model, tmp_path, capsys):
    from segtool.analysis.image_sets import square_image

    out = tmp_path / "strip.png"
    code, _, err = run_cli(capsys, "explore", "interpolate", folder / "img0.png", folder / "img1.png", "--steps", 4,
                           "--size", SIZE, "--model", tiny_model, "--out", out)
    assert code == 0, err
    parts = tiles(out, 4 + 2)
    a, b = (square_image(folder / name, SIZE) for name in ("img0.png", "img1.png"))
    assert np.array_equal(parts[0], a) and np.array_equal(parts[-1], b)  # the originals at the ends
    # t = 0 and t = 1 decode the two images' own codes; the middle differs from both.
    assert np.abs(parts[1].astype(int) - plain_reconstruction(tiny_model, a)).max() <= 1
    assert np.abs(parts[4].astype(int) - plain_reconstruction(tiny_model, b)).max() <= 1
    assert not np.array_equal(parts[2], parts[1]) and not np.array_equal(parts[2], parts[4])


def test_traverse_without_atom_varies_the_most_used_atom(folder, tiny_model, tmp_path, capsys):
    from segtool.analysis.codes import atom_usage, encode
    from segtool.analysis.image_sets import square_image

    picture = square_image(folder / "img2.png", SIZE)
    usage = atom_usage(encode(scvae.load(tiny_model), picture))
    assert [u.mean_abs for u in usage] == sorted((u.mean_abs for u in usage), reverse=True)
    out = tmp_path / "traverse.png"
    code, _, err = run_cli(capsys, "explore", "traverse", folder / "img2.png", "--range", "-2:2", "--steps", 5,
                           "--size", SIZE, "--model", tiny_model, "--out", out)
    assert code == 0, err
    assert f"atom {usage[0].atom}:" in err
    parts = tiles(out, 1 + 5)
    assert np.abs(parts[3].astype(int) - plain_reconstruction(tiny_model, picture)).max() <= 1  # v = 0
    assert not np.array_equal(parts[1], parts[5])  # v = -2 and v = 2 decode differently


def test_traverse_refuses_an_atom_the_model_does_not_have(folder, tiny_model, tmp_path, capsys):
    code, _, err = run_cli(capsys, "explore", "traverse", folder / "img2.png", "--atom", 32, "--size", SIZE,
                           "--model", tiny_model, "--out", tmp_path / "t.png")
    assert code == 2 and "atoms 0..31" in err and "Traceback" not in err


def test_atoms_lists_the_most_used_atoms(folder, tiny_model, capsys):
    from segtool.analysis.codes import atom_usage, encode
    from segtool.analysis.image_sets import square_image

    code, stdout, err = run_cli(capsys, "explore", "atoms", folder / "img0.png", "--top", 3, "--size", SIZE,
                                "--model", tiny_model)
    assert code == 0, err
    usage = atom_usage(encode(scvae.load(tiny_model), square_image(folder / "img0.png", SIZE)))
    listed = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("│")]
    assert listed == [u.atom for u in usage[:3]]


def test_explore_never_writes_over_a_users_file(folder, tiny_model, tmp_path, capsys):
    target = tmp_path / "mine.png"
    target.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "explore", "traverse", folder / "img0.png", "--size", SIZE, "--model", tiny_model,
                           "--out", target)
    assert code == 1 and "was not written by segtool" in err
    assert target.read_bytes() == b"precious"


# -- patches ---------------------------------------------------------------------------------------

def test_patches_clusters_every_cell_of_every_image(folder, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "patches", folder, "--k", 4, "--per-cluster", 3, "--model", tiny_model,
                           "--batch-size", 2, "--out", out)
    assert code == 0, err
    summary = json.loads((out / "patches.json").read_text())
    from segtool.pipeline.extract import model_input_size

    cells = sum(np.prod(np.array(model_input_size(*Image.open(p).size[::-1])) // 8) for p in folder.iterdir())
    assert summary["images"] == 5 and summary["cells"] == cells == sum(summary["counts"])
    assert summary["k"] == 4 and summary["patch_pixels"] == 8
    assert np.load(out / "centres.npy").shape == (4, 32)
    sheet = Image.open(out / "patches.png")
    rows = len(summary["rows_of_patches_png"])
    assert sheet.size[1] == rows * 34 - 2 and sheet.size[0] <= 3 * 34 - 2


def test_reservoir_sample_keeps_each_cluster_uniform(monkeypatch):
    """Every cell of a cluster has the same chance to be shown: a cluster of 40 cells, 4 shown,
    counted over many seeds."""
    from segtool.analysis import patches

    class OneColumnExtractor:
        factor = 1

        def extract(self, images):
            return [np.zeros((im.shape[0], 1, 2), np.float32) + [[[0, 1]]] for im in images]

    images = {f"f{i}": np.full((10, 1, 3), i, np.uint8) for i in range(4)}  # 4 images x 10 cells, one cluster
    monkeypatch.setattr(patches, "load_image", lambda path, max_pixels: images[str(path)])
    monkeypatch.setattr(patches, "resize_image", lambda image, w, h: image)
    seen = np.zeros(4)
    for seed in range(300):
        result = patches.cluster_patches(list(images), OneColumnExtractor(), k=2, per_cluster=4, seed=seed)
        for c, sample in enumerate(result.samples):
            for patch in sample:
                seen[int(patch[0, 0, 0])] += 1
    # 1,200 patches shown, each image's 10 cells a quarter of the cluster: 300 each, +- sampling noise.
    assert seen.sum() == 1200 and np.abs(seen - 300).max() < 60


def test_patch_clustering_memory_does_not_grow_with_the_number_of_images(monkeypatch):
    """Peak traced memory over 8 images and over 64: the same within a batch's worth."""
    import tracemalloc

    from segtool.analysis import patches

    class RandomCodes:
        factor = 8

        def extract(self, images):
            rng = np.random.default_rng(len(images))
            return [rng.normal(size=(16, 16, 64)).astype(np.float32) for _ in images]

    monkeypatch.setattr(patches, "load_image", lambda path, max_pixels: np.zeros((128, 128, 3), np.uint8))

    def peak(count: int) -> int:
        tracemalloc.start()
        patches.cluster_patches([f"f{i}" for i in range(count)], RandomCodes(), k=8, per_cluster=4, batch_images=4)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    peak(4)  # imports (sklearn's first use) are not what is measured
    small, large = peak(8), peak(64)
    codes_per_image = 16 * 16 * 64 * 4
    assert large < small + 2 * codes_per_image  # 56 more images' codes (3.7 MB) would show


# -- segment --parts -------------------------------------------------------------------------------

def test_segment_parts_writes_a_part_map_and_overlay(folder, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "segment", folder / "img0.png", "--parts", 3, "--model", tiny_model,
                                "--out", out, "--json")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["img0_parts.png", "img0_parts_overlay.png"]
    parts = np.asarray(Image.open(out / "img0_parts.png").convert("RGB"))
    assert parts.shape == (40, 48, 3)  # the image's size
    assert len(np.unique(parts.reshape(-1, 3), axis=0)) == 3
    result = json.loads(stdout)["results"][0]
    from segtool.pipeline.extract import model_input_size

    h, w = model_input_size(40, 48)
    assert sum(result["part_sizes"].values()) == (h // 8) * (w // 8) and len(result["part_sizes"]) == 3


def test_parts_are_output_kinds_of_segment_files_and_of_a_watched_folder(folder, tiny_model, tmp_path):
    import segtool
    from segtool.io.outputs import OutputDir
    from segtool.segment_files import segment_files, watch_folder

    segmenter = segtool.Segmenter("scvae", model=tiny_model).method
    report = segment_files([str(folder / "img0.png")], segmenter, tmp_path / "one", parts=3, kinds=("parts",))
    assert not report.failures and sorted(p.name for p in (tmp_path / "one").glob("*.png")) == ["img0_parts.png"]
    with pytest.raises(ValueError, match="with parts"):
        segment_files([str(folder / "img0.png")], segmenter, tmp_path / "two", parts=3, kinds=("mask",))
    watched = watch_folder(folder, segmenter, OutputDir(tmp_path / "watched", [folder]), parts=2, interval=0.01,
                           polls=3)
    assert len(watched.results) == 5 and all(len(r["part_sizes"]) == 2 for r in watched.results)
    assert len(list((tmp_path / "watched").glob("*_parts_overlay.png"))) == 5


# -- option checks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["segment", "x.jpg", "--parts", "1"], ["segment", "x.jpg", "--parts", "3", "--cutout"],
                                  ["recon", "x", "--size", "8"], ["patches", "x", "--k", "1"],
                                  ["explore", "traverse", "x.jpg", "--range", "3:1"],
                                  ["explore", "interpolate", "a.jpg", "b.jpg", "--steps", "1"]])
def test_a_bad_option_is_refused_in_one_line_before_heavy_imports(argv):
    code = ("import sys\nfrom segtool.cli.app import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code)\nprint(sorted(m for m in ('torch', 'sklearn', 'cv2') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["exit 2", "[]"], proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("segtool: error: ")
