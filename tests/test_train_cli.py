"""`segtool train`: dry runs describe the model, and every user mistake is one line, no traceback."""

import json
import re

import pytest
import torch

import scvae
from scvae.training.checkpoints import CheckpointManager
from segtool.cli.app import main
from segtool.training.recipe import available_recipes, load_recipe

from conftest import tiny_config

SHIPPED = ["small-cpu", "imagenet", "ffhq", "imagenet-d4", "imagenet-d6", "imagenet-d8", "default-cpu", "wide48-cpu",
           "photos-cpu", "vsc-cpu", "vsc-imagenet"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    # rich wraps at 80 columns when output is not a terminal; keep each message on one line.
    monkeypatch.setenv("COLUMNS", "1000")


def run(capsys, *argv) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("segtool: error: ")
    assert "Traceback" not in err
    return lines[0]


def parameter_count(out: str) -> int:
    row = next(line for line in out.splitlines() if "parameters" in line)
    return int(re.search(r"\d{1,3}(?:,\d{3})+", row).group().replace(",", ""))


def test_dry_run_of_the_paper_model(capsys):
    code, out, _ = run(capsys, "imagenet", "--dry-run")
    assert code == 0
    assert 40_000_000 <= parameter_count(out) <= 50_000_000  # the paper's d = 3 model: about 43M
    assert "32x32x512" in out


def test_dry_run_with_an_override(capsys):
    code, out, _ = run(capsys, "imagenet", "--dry-run", "--set", "model.d=4")
    assert code == 0
    assert "16x16x512" in out and "32x32x512" not in out


def test_unknown_recipe(capsys):
    code, _, err = run(capsys, "no-such-recipe", "--dry-run")
    assert code == 2
    line = assert_one_line_error(err)
    assert "no-such-recipe" in line and "small-cpu" in line  # names what exists


@pytest.mark.parametrize("override, hint", [("model.d", "expected section.key=value"),
                                            ("optimiser.lr=1e-4", "unknown section"),
                                            ("model.no_such_field=1", "no_such_field")])
def test_bad_override(capsys, override, hint):
    code, _, err = run(capsys, "small-cpu", "--dry-run", "--set", override)
    assert code == 2
    assert hint in assert_one_line_error(err)


def test_numbers_written_as_people_write_them(capsys, tmp_path):
    """YAML 1.1 reads 4e-5 and 1e3 as text; the README's own example uses them."""
    recipe = load_recipe("imagenet", ["train.lr=4e-5", "model.lista_steps=1e3", "train.warmup_steps=2e2"])
    assert recipe.train.lr == pytest.approx(4e-5) and recipe.model.lista_steps == 1000
    assert isinstance(recipe.model.lista_steps, int) and isinstance(recipe.train.warmup_steps, int)
    path = tmp_path / "r.yaml"
    path.write_text("model: {preset: small-d3, alpha: 1e-2}\ntrain: {lr: 2e-4, batch_size: 4}\n")
    recipe = load_recipe(str(path))
    assert recipe.train.lr == pytest.approx(2e-4) and recipe.model.alpha == pytest.approx(1e-2)
    code, out, _ = run(capsys, "imagenet", "--dry-run", "--set", "model.d=4", "--set", "model.lista_mode=official",
                       "--set", "train.lr=4e-5")
    assert code == 0 and "lr 4e-05" in out


@pytest.mark.parametrize("override, hint", [("train.lr=abc", "lr must be a number, got 'abc'"),
                                            ("train.lr=.nan", "lr must be a finite number"),
                                            ("model.lista_steps=2.5", "lista_steps must be a whole number"),
                                            ("model.d=2.5", "d must be a whole number"),
                                            ("model=abc", "model must be a mapping"),
                                            ("model=[1, 2]", "model must be a mapping"),
                                            ("train.batch_size=true", "batch_size must be a whole number"),
                                            ("train.resolution=0", "resolution must be in 8..4096"),
                                            ("train.resolution=12", "resolution 12 is not a multiple of 2^d = 8"),
                                            ("train.lr=1.0e+300", "lr must be > 0 and <= 1"),
                                            ("train.grad_clip=-1", "grad_clip must be > 0"),
                                            ("data.holdout=-3", "holdout must be >= 0"),
                                            ("model.d=1000000000", "d must be in 0..10"),
                                            ("model.num_atoms=1000000000", "num_atoms must be in 1..16384"),
                                            ("model.base_channels=4096", "parameters is above the limit"),
                                            ("train.seed=-1", "seed must be a whole number"),
                                            ("train.amp=abc", "amp must be true or false"),
                                            ("data.root=123", "root must be text"),
                                            ("train.num_workers=-1", "num_workers must be auto or a whole number"),
                                            ("train.num_workers=many", "num_workers must be auto or a whole number"),
                                            ("train.peak_flops=0", "peak_flops must be a FLOP/s figure > 0"),
                                            ("meant_for=tpu", "meant_for must be gpu or cpu")])
def test_values_of_the_wrong_type_are_named(capsys, tmp_path, override, hint):
    code, _, err = run(capsys, "small-cpu", "--dry-run", "--set", override)
    assert code == 2
    assert hint in assert_one_line_error(err)


def test_a_batch_larger_than_the_training_set_is_refused_before_the_run_folder(capsys, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        Image.new("RGB", (40, 40), (i * 40, 80, 120)).save(images / f"im{i}.png")
    out = tmp_path / "run"
    code, _, err = run(capsys, "small-cpu", "--data-root", str(images), "--out", str(out),
                       "--set", "train.batch_size=1000", "--set", "data.holdout=2")
    assert code != 0 and "batch_size = 1000" in assert_one_line_error(err)
    assert not out.exists()


def test_a_recipe_that_is_not_text_is_refused(capsys, tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"model: \xff\xfe\x00 bad")
    code, _, err = run(capsys, str(path), "--dry-run")
    assert code != 0
    assert "not a text file" in assert_one_line_error(err)


def test_imagefolder_recipe_without_data_root(capsys, tmp_path):
    code, _, err = run(capsys, "small-cpu", "--out", str(tmp_path / "run"), "--max-steps", "1")
    assert code != 0
    assert "--data-root" in assert_one_line_error(err)
    assert not (tmp_path / "run").exists()  # nothing written for a run that never started


def test_a_missing_init_from_is_refused_before_anything_is_written(capsys, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    code, _, err = run(capsys, "photos-cpu", "--data-root", str(images), "--out", str(tmp_path / "run"),
                       "--set", "train.init_from=no-such-model")
    assert code != 0
    assert "no-such-model" in assert_one_line_error(err)
    assert not (tmp_path / "run").exists()


def test_rerun_into_a_run_directory_needs_resume(capsys, tmp_path):
    out = tmp_path / "run"
    CheckpointManager(out / "checkpoints").save(5, scvae.SCVAE(tiny_config()), {"step": 5, "rng_cpu": torch.get_rng_state()})
    images = tmp_path / "images"
    images.mkdir()
    code, _, err = run(capsys, "small-cpu", "--data-root", str(images), "--out", str(out))
    assert code == 2
    assert "--resume" in assert_one_line_error(err)
    assert (out / "checkpoints" / "step-00000005").is_dir()  # untouched


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_parse(name):
    assert name in available_recipes()
    recipe = load_recipe(name)
    assert recipe.train.max_steps or recipe.train.epochs
    type(recipe.model).from_dict(recipe.model.to_dict())  # a valid architecture of its backbone


def test_progress_display_is_closed_when_training_stops_early(tmp_path, monkeypatch):
    # On a terminal the progress bar hides the cursor; Ctrl-C or a divergence must still give it back.
    import io

    from PIL import Image
    from rich.console import Console

    import segtool.cli.train as run_module
    from scvae.training.trainer import Trainer, TrainingInterrupted

    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.new("RGB", (16, 16), (60 * i, 80, 120)).save(images / f"{i}.png")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model: {d: 2, base_channels: 8, max_channels: 16, code_dim: 16, num_atoms: 32, lista_steps: 4}\n"
                      "data: {source: imagefolder, holdout: 1}\n"
                      "train: {batch_size: 2, resolution: 16, max_steps: 5}\n")
    screen = io.StringIO()
    monkeypatch.setattr(run_module, "console", Console(file=screen, force_terminal=True, width=100))
    started = []

    def interrupted_fit(self, resume=False):
        self.hooks.on_start({"parameters": {"total": 1}, "resumed_from": None, "device": "cpu", "world_size": 1,
                             "amp": False, "start_step": 0, "total_steps": 5, "num_workers": 0, "device_name": None,
                             "flops_per_image": None, "peak_flops": None, "peak_flops_source": None})
        started.append(self.hooks)
        raise TrainingInterrupted(2, None)

    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    with pytest.raises(TrainingInterrupted):
        run_module.run_training(str(recipe), [], str(images), str(tmp_path / "run"), None, False, False, "cpu")
    assert started and not started[0].progress.live.is_started
    shown, hidden = screen.getvalue().rfind("\x1b[?25h"), screen.getvalue().rfind("\x1b[?25l")
    assert hidden >= 0 and shown > hidden  # the cursor was hidden, then shown again


GPU_RECIPES = ["imagenet", "imagenet-d4", "imagenet-d6", "imagenet-d8", "ffhq", "vsc-imagenet"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_say_which_machine_they_are_for(name):
    recipe = load_recipe(name)
    assert recipe.meant_for == ("gpu" if name in GPU_RECIPES else "cpu")
    if name in GPU_RECIPES:
        assert recipe.train.num_workers == "auto"  # not a fixed 8 that oversubscribes small machines


def tiny_images(folder, count=6):
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        Image.new("RGB", (24, 20), (40 * i, 90, 160)).save(folder / f"im{i}.png")
    return folder


@pytest.mark.parametrize("device, gpu_visible, why", [("auto", False, "no GPU is visible"),
                                                      ("cpu", True, "--device cpu was asked for")])
def test_a_gpu_recipe_on_a_cpu_is_refused_in_one_line(capsys, tmp_path, monkeypatch, device, gpu_visible, why):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu_visible)
    out = tmp_path / "run"
    code, _, err = run(capsys, "imagenet", "--data-root", str(tiny_images(tmp_path / "images")), "--out", str(out),
                       "--device", device)
    assert code == 2
    line = assert_one_line_error(err)
    assert "recipe imagenet is meant for GPUs and " + why in line
    for hint in ("small-cpu", "default-cpu", "--dry-run", "--allow-cpu"):
        assert hint in line
    assert not out.exists()  # refused before anything was read or written


def test_allow_cpu_trains_a_gpu_recipe_and_reports_speed_from_the_first_step(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.set_num_threads(1)
    out = tmp_path / "run"
    tiny = ["--set", "model.d=2", "--set", "model.base_channels=8", "--set", "model.max_channels=16",
            "--set", "model.code_dim=16", "--set", "model.num_atoms=32", "--set", "model.lista_steps=4",
            "--set", "train.resolution=16", "--set", "train.batch_size=2", "--set", "data.holdout=2",
            "--set", "data.val_resolution=16", "--set", "train.num_workers=0"]
    code, stdout, err = run(capsys, "imagenet", "--allow-cpu", "--data-root", str(tiny_images(tmp_path / "images")),
                            "--out", str(out), "--max-steps", "2", *tiny)
    assert code == 0, err
    assert "final checkpoint:" in stdout
    # imagenet logs every 50 steps; the first step is reported at once, with its rate.
    assert re.search(r"^step 1: loss [\d.]+ .*\| [\d.]+ img/s \| 16px$", err, re.M), err
    assert "MFU: not measured on cpu" in err
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r.get("kind") != "checkpoint"] == [1, 2]


def test_dry_run_of_a_gpu_recipe_needs_no_flag_on_a_cpu(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, _ = run(capsys, "imagenet", "--dry-run")
    assert code == 0
    assert re.search(r"auto \(\d+ here\) loader workers", out) and "GPUs" in out


@pytest.mark.parametrize("info, expected", [
    ({"device": "cuda:0", "flops_per_image": 1.1943e12, "peak_flops": 989e12, "peak_flops_source": "NVIDIA H200"},
     "MFU: 1,194.3 GFLOP per image (forward + backward) against 989 TFLOP/s per GPU (NVIDIA H200)"),
    ({"device": "cuda:0", "flops_per_image": None, "peak_flops": None, "peak_flops_source": "Tesla T4"},
     "MFU: not measured, the peak FLOP/s of Tesla T4 is unknown: set train.peak_flops"),
    ({"device": "cpu", "flops_per_image": None, "peak_flops": None, "peak_flops_source": None},
     "MFU: not measured on cpu, only on a GPU; images/s only")])
def test_the_start_of_a_run_says_what_mfu_is_measured_against(info, expected):
    from segtool.cli.train import describe_utilisation

    assert describe_utilisation(info) == expected
