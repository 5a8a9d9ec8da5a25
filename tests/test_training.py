"""The training loop: it learns, refuses to write NaNs, resumes exactly, and survives kills and DDP."""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import scvae
from scvae.checkpoint import CheckpointError
from scvae.training.checkpoints import CheckpointManager
from scvae.training.trainer import TrainConfig, Trainer, TrainerHooks, TrainingDiverged, TrainingInterrupted

from conftest import PYTHON, ROOT, tiny_config


@pytest.fixture(autouse=True)
def one_thread():
    # Two cores shared with other work: a second intra-op thread makes tiny steps ~10x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class SyntheticImages:
    """Smooth images: a coloured Gaussian blob on a colour gradient.

    The scene depends on the index alone and the sample seed only jitters it (a stand-in for
    augmentation), so there is something stable to learn."""

    def __init__(self, count: int = 32):
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key) -> torch.Tensor:
        index, seed, resolution = key
        scene = np.random.default_rng(index)
        jitter = np.random.default_rng(seed)
        colour, ground = scene.uniform(-1, 1, (2, 3, 1, 1))
        cy, cx = scene.uniform(0.25, 0.75, 2) + jitter.normal(0, 0.03, 2)
        width = scene.uniform(0.1, 0.25)
        yy, xx = np.mgrid[0:resolution, 0:resolution] / max(1, resolution - 1)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width ** 2))
        image = ground * (0.5 + 0.5 * xx) * (1 - blob) + colour * blob
        return torch.from_numpy(image.clip(-1, 1).astype(np.float32))


class TurnsNaN(SyntheticImages):
    """Good images for the first `good_items` reads, NaN after: divergence at a known step."""

    def __init__(self, good_items: int):
        super().__init__()
        self.good_items, self.reads = good_items, 0

    def __getitem__(self, key) -> torch.Tensor:
        self.reads += 1
        image = super().__getitem__(key)
        return image if self.reads <= self.good_items else torch.full_like(image, float("nan"))


def train_config(**changes) -> TrainConfig:
    settings = dict(batch_size=4, lr=3e-3, resolution=16, log_every=1, ckpt_every=100, keep_checkpoints=3, seed=0)
    settings.update(changes)
    return TrainConfig(**settings)


def log_rows(run: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") != "checkpoint"], [r for r in rows if r.get("kind") == "checkpoint"]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return scvae.load_model(checkpoint).state_dict()


def assert_equal_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"


class Recorder(TrainerHooks):
    def __init__(self):
        self.start: dict | None = None
        self.steps: list[int] = []

    def on_start(self, info):
        self.start = info

    def on_step(self, step, metrics):
        self.steps.append(step)


# -- in-process ---------------------------------------------------------------------------------

def test_loss_falls(tmp_path):
    Trainer(tiny_config(), train_config(max_steps=30), SyntheticImages(), tmp_path).fit()
    steps, _ = log_rows(tmp_path)
    losses = [r["loss"] for r in steps]
    assert [r["step"] for r in steps] == list(range(1, 31))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.75 * first, (first, last)  # measured: about 0.62


def test_nan_guard_stops_before_writing(tmp_path):
    # batch 4: steps 1 and 2 read 8 good images, step 3 sees NaN.
    config = train_config(max_steps=10, ckpt_every=1)
    with pytest.raises(TrainingDiverged, match=r"at step 3\b") as info:
        Trainer(tiny_config(), config, TurnsNaN(good_items=8), tmp_path).fit()
    manager = CheckpointManager(tmp_path / "checkpoints")
    assert not (manager.root / "step-00000003").exists()
    assert manager.latest().name == "step-00000002"
    assert "step-00000002" in str(info.value)  # tells the user where to resume from
    scvae.load_model(manager.latest())  # finite weights: the NaN step never reached the optimiser
    steps, _ = log_rows(tmp_path)
    assert max(r["step"] for r in steps) == 2


def test_nan_guard_on_exploding_learning_rate(tmp_path):
    # No clipping and an absurd lr: the weights overflow within a few steps. The config refuses
    # lr > 1, so it is set after construction: the guard must hold whatever reaches the loop.
    config = train_config(max_steps=10, ckpt_every=1, lr=1.0, grad_clip=None)
    config.lr = 1e30
    with pytest.raises(TrainingDiverged) as info:
        Trainer(tiny_config(), config, SyntheticImages(), tmp_path).fit()
    step = int(str(info.value).split("at step ")[1].split(";")[0])
    manager = CheckpointManager(tmp_path / "checkpoints")
    assert not (manager.root / f"step-{step:08d}").exists()
    latest = manager.latest()
    assert latest is None or int(latest.name[5:]) == step - 1


def test_resume_after_clean_stop(tmp_path):
    Trainer(tiny_config(), train_config(max_steps=6, ckpt_every=3), SyntheticImages(), tmp_path).fit()
    hooks = Recorder()
    final = Trainer(tiny_config(), train_config(max_steps=10, ckpt_every=3), SyntheticImages(), tmp_path,
                    hooks=hooks).fit(resume=True)
    assert hooks.start["start_step"] == 6 and hooks.start["resumed_from"].endswith("step-00000006")
    assert hooks.steps == [7, 8, 9, 10]
    assert final.name == "step-00000010"
    steps, checkpoints = log_rows(tmp_path)
    assert [r["step"] for r in steps] == list(range(1, 11))
    assert [r["step"] for r in checkpoints] == [3, 6, 9, 10]


def test_resume_with_a_different_architecture_is_refused(tmp_path):
    Trainer(tiny_config(), train_config(max_steps=2), SyntheticImages(), tmp_path).fit()
    with pytest.raises(CheckpointError, match="num_atoms 32 -> 48") as info:
        Trainer(tiny_config(num_atoms=48), train_config(max_steps=4), SyntheticImages(), tmp_path).fit(resume=True)
    assert "step-00000002" in str(info.value)


def test_init_from_starts_a_fresh_run_from_another_models_weights(tmp_path):
    first = Trainer(tiny_config(), train_config(max_steps=4), SyntheticImages(), tmp_path / "a").fit()
    hooks = Recorder()
    # One step at a learning rate too small to move the weights: they are the ones started from.
    tuned = Trainer(tiny_config(), train_config(max_steps=1, lr=1e-8, init_from=str(first)), SyntheticImages(),
                    tmp_path / "b", hooks=hooks).fit()
    scratch = Trainer(tiny_config(), train_config(max_steps=1, lr=1e-8), SyntheticImages(), tmp_path / "c").fit()
    assert hooks.start["start_step"] == 0 and hooks.start["resumed_from"] is None  # a fresh run, its own schedule
    start, tuned_w, scratch_w = weights(first), weights(tuned), weights(scratch)
    assert all(torch.allclose(start[k], tuned_w[k], atol=1e-5) for k in start)
    assert not all(torch.allclose(start[k], scratch_w[k], atol=1e-5) for k in start)
    with pytest.raises(CheckpointError, match="num_atoms 32 vs 48"):
        Trainer(tiny_config(num_atoms=48), train_config(max_steps=1, init_from=str(first)), SyntheticImages(),
                tmp_path / "d").fit()


def test_extra_roots_add_training_images_and_validation_stays_the_roots_last(tmp_path):
    import datasets
    from PIL import Image

    from segtool.training.data import load_image_sets
    from segtool.training.dataconfig import DataConfig, TrainingDataError

    for folder, names in (("main", ["a.png", "b.png", "c.png"]), ("more", ["x.png", "y.png"])):
        (tmp_path / folder).mkdir()
        for name in names:
            Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / folder / name)
    config = DataConfig(root=str(tmp_path / "main"), extra_roots=[str(tmp_path / "more")], holdout=1)
    train, val = load_image_sets(config)
    def paths(split):
        return [Path(r["path"]).name for r in split.cast_column("image", datasets.Image(decode=False))["image"]]

    assert paths(train) == ["x.png", "y.png", "a.png", "b.png"] and paths(val) == ["c.png"]
    with pytest.raises(TrainingDataError, match="extra_roots"):
        DataConfig(extra_roots="not-a-list")
    with pytest.raises(TrainingDataError, match="no images|not a directory"):
        load_image_sets(DataConfig(root=str(tmp_path / "main"), extra_roots=[str(tmp_path / "absent")], holdout=1))


def test_fresh_start_drops_rows_of_a_run_that_never_checkpointed(tmp_path):
    # A run killed before its first checkpoint leaves log rows but no weights to resume from.
    (tmp_path / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in (1, 2, 3)))
    Trainer(tiny_config(), train_config(max_steps=2), SyntheticImages(), tmp_path).fit(resume=True)
    steps, _ = log_rows(tmp_path)
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["loss"] != 9.0 for r in steps)


def test_resume_is_bit_identical(tmp_path):
    config = dict(ckpt_every=3, deterministic=True)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    full = Trainer(tiny_config(), train_config(max_steps=12, **config), SyntheticImages(), tmp_path / "a").fit()
    Trainer(tiny_config(), train_config(max_steps=7, **config), SyntheticImages(), tmp_path / "b").fit()
    resumed = Trainer(tiny_config(), train_config(max_steps=12, **config), SyntheticImages(), tmp_path / "b").fit(resume=True)
    # A constant schedule does not depend on max_steps, so stopping at 7 changes nothing.
    assert_equal_weights(weights(full), weights(resumed))
    # deterministic=True is process-wide; the trainer must not leave it switched on.
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before


class InterruptAt(TrainerHooks):
    """Sends this process SIGINT (a Ctrl-C) once the given step has run."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, step, metrics):
        if step == self.step:
            signal.raise_signal(signal.SIGINT)


def test_ctrl_c_then_resume_is_bit_identical(tmp_path):
    # Cosine schedule with warmup and dropout: the lr depends on the total, and dropout draws
    # from the global RNG, which a resume must restore exactly.
    model = tiny_config(dropout=0.1)
    config = train_config(max_steps=12, ckpt_every=5, schedule="cosine", warmup_steps=3)
    full = Trainer(model, config, SyntheticImages(), tmp_path / "a").fit()
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        Trainer(model, config, SyntheticImages(), tmp_path / "b", hooks=InterruptAt(5)).fit()
    # The signal is seen at the next step boundary; that step finishes and is saved.
    assert info.value.step == 6 and info.value.checkpoint.name == "step-00000006"
    assert signal.getsignal(signal.SIGINT) is handler_before
    resumed = Trainer(model, config, SyntheticImages(), tmp_path / "b").fit(resume=True)
    assert_equal_weights(weights(full), weights(resumed))


def test_the_first_step_is_logged_and_a_cpu_run_reports_no_mfu(tmp_path):
    # log_every 5: without the first step, a slow model would show nothing for 5 steps.
    hooks = Recorder()
    Trainer(tiny_config(), train_config(max_steps=7, log_every=5), SyntheticImages(), tmp_path, hooks=hooks).fit()
    steps, _ = log_rows(tmp_path)
    assert [r["step"] for r in steps] == [1, 5, 7]
    assert all(r["images_per_s"] > 0 for r in steps)
    # On a CPU there is no peak to divide by: MFU and GPU memory are absent, not invented.
    assert not any("mfu" in r or "gpu_memory_gib" in r for r in steps)
    assert hooks.start["peak_flops"] is None and hooks.start["device_name"] is None
    assert hooks.start["num_workers"] == 0


def test_a_resumed_run_logs_its_own_first_step(tmp_path):
    Trainer(tiny_config(), train_config(max_steps=3, log_every=5), SyntheticImages(), tmp_path).fit()
    Trainer(tiny_config(), train_config(max_steps=12, log_every=5), SyntheticImages(), tmp_path).fit(resume=True)
    steps, _ = log_rows(tmp_path)
    assert [r["step"] for r in steps] == [1, 3, 4, 5, 10, 12]


def test_flops_are_counted_without_touching_the_run():
    from scvae.training.throughput import training_flops_per_image

    model = scvae.SCVAE(tiny_config(dropout=0.1)).train()
    rng_before = torch.get_rng_state()
    at_16, at_32 = training_flops_per_image(model, 16), training_flops_per_image(model, 32)
    # Dropout draws and gradients would change a resumed run's weights; the count must leave neither.
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert all(p.grad is None for p in model.parameters())
    assert at_16 > 0
    # Convolutions dominate and scale with the pixels: twice the side, about four times the work.
    assert 3.5 < at_32 / at_16 < 4.5, (at_16, at_32)


@pytest.mark.parametrize("name, peak", [("NVIDIA H200", 989e12), ("NVIDIA H100 80GB HBM3", 989e12),
                                        ("NVIDIA H100 PCIe", 756e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                                        ("NVIDIA L40S", 362e12), ("NVIDIA L4", 121e12), ("Tesla T4", None)])
def test_peak_flops_of_known_gpus(name, peak):
    from scvae.training.throughput import table_peak_flops

    assert table_peak_flops(name) == peak


def test_utilisation_is_achieved_over_peak():
    from scvae.training.throughput import utilisation

    # 1 TFLOP per image at 300 images/s on one 989 TFLOP/s GPU; the same rate over 8 GPUs.
    assert utilisation(1e12, 300, 989e12) == pytest.approx(300 / 989)
    assert utilisation(1e12, 300, 989e12, devices=8) == pytest.approx(300 / 989 / 8)


@pytest.mark.parametrize("cores, per_node, workers", [(1, None, 0), (2, None, 1), (16, None, 8), (64, None, 8),
                                                       (16, "8", 1), (16, "4", 3)])
def test_auto_num_workers(monkeypatch, cores, per_node, workers):
    from scvae.training.trainer import auto_num_workers, resolve_num_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    if per_node:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", per_node)
    else:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_num_workers() == workers == resolve_num_workers("auto")
    assert resolve_num_workers(3) == 3


@pytest.mark.parametrize("value, accepted", [("auto", "auto"), (0, 0), (2.0, 2), (256, 256), (-1, None), (257, None),
                                             (1.5, None), (True, None), ("eight", None), ("8", None)])
def test_num_workers_is_auto_or_a_whole_number(value, accepted):
    if accepted is None:
        with pytest.raises(ValueError, match="num_workers must be auto or a whole number in 0..256"):
            TrainConfig(num_workers=value)
    else:
        assert TrainConfig(num_workers=value).num_workers == accepted


def test_too_many_workers_are_warned_about_once(tmp_path, recwarn):
    # torch checks the worker count when the loader is built and again when it is iterated.
    too_many = len(os.sched_getaffinity(0)) + 1
    Trainer(tiny_config(), train_config(max_steps=1, num_workers=too_many), SyntheticImages(8), tmp_path).fit()
    warned = [w for w in recwarn if "This DataLoader will create" in str(w.message)]
    assert len(warned) == 1, [str(w.message) for w in recwarn]


# -- subprocesses: the CLI, kills, torchrun -----------------------------------------------------

def subprocess_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("COLUMNS", None)  # messages must stay on one line at rich's default width
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_pngs(folder: Path, count: int = 12, size: int = 24) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    for i in range(count):
        colour = rng.uniform(0, 255, 3)
        cy, cx = rng.uniform(0.25, 0.75, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05)
        image = colour * blob[..., None] + 60 * xx[..., None]
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


TINY_RECIPE = """\
model: {d: 2, base_channels: 8, max_channels: 16, num_res_blocks: 1, code_dim: 16, num_atoms: 32, lista_steps: 4, alpha: 0.05}
data: {source: imagefolder, holdout: 2, val_limit: 2, val_resolution: 16, cache: true, cache_short_side: 32}
train: {batch_size: 4, lr: 3.0e-3, max_steps: 12, resolution: 16, log_every: 1, ckpt_every: 2, keep_checkpoints: 2,
        seed: 0, schedule: cosine, warmup_steps: 3}
"""


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-inputs")
    recipe = base / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    return recipe, write_pngs(base / "images")


def segtool_train(recipe: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "segtool", "train", str(recipe), "--data-root", str(images), "--out", str(out), *extra]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training exited with {proc.returncode} before {path} appeared: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, cli_inputs):
    recipe, images = cli_inputs
    env = subprocess_env()
    # The reference runs beside the victim: same seed, same length, never interrupted.
    reference = subprocess.Popen(segtool_train(recipe, images, tmp_path / "ref"), env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(segtool_train(recipe, images, tmp_path / "run"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "run" / "checkpoints"
    wait_for(checkpoints / "latest", victim)
    time.sleep(random.Random(20240607).uniform(0.0, 0.6))
    assert victim.poll() is None, "the run ended before the kill; give it more steps"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    last = CheckpointManager(checkpoints).latest()
    assert last is not None and int(last.name[5:]) < 12
    scvae.load_model(last)  # readable as left by the kill

    resumed = subprocess.run(segtool_train(recipe, images, tmp_path / "run", "--resume"), env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {last}" in resumed.stderr
    out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err

    final = tmp_path / "run" / "checkpoints" / "step-00000012"
    assert_equal_weights(weights(tmp_path / "ref" / "checkpoints" / "step-00000012"), weights(final))
    steps, _ = log_rows(tmp_path / "run")
    assert [r["step"] for r in steps] == list(range(1, 13))


def test_ctrl_c_saves_and_explains_how_to_resume(tmp_path, cli_inputs):
    recipe, images = cli_inputs
    proc = subprocess.Popen(segtool_train(recipe, images, tmp_path / "run", "--max-steps", "500"), env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "run" / "checkpoints" / "latest", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out
    notes = [line for line in err.splitlines() if "--resume" in line]
    assert len(notes) == 1 and notes[0].startswith("segtool: interrupted at step "), err
    step = int(notes[0].split("interrupted at step ")[1].split(";")[0])
    saved = tmp_path / "run" / "checkpoints" / f"step-{step:08d}"
    assert str(saved) in notes[0]
    assert CheckpointManager(saved.parent).latest() == saved
    _, state = CheckpointManager.load(saved)
    assert state["step"] == step


def test_sigterm_to_the_whole_process_group_saves_like_ctrl_c(tmp_path, cli_inputs):
    """`timeout`, Slurm and Kubernetes signal every process of the group, DataLoader workers first."""
    recipe, images = cli_inputs
    proc = subprocess.Popen(segtool_train(recipe, images, tmp_path / "run", "--max-steps", "500",
                                          "--set", "train.num_workers=2"),
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for(tmp_path / "run" / "checkpoints" / "latest", proc)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out and "killed by signal" not in err
    notes = [line for line in err.splitlines() if "--resume" in line]
    assert len(notes) == 1 and notes[0].startswith("segtool: interrupted at step "), err


def test_torchrun_cli_two_processes(tmp_path, cli_inputs):
    recipe, images = cli_inputs
    command = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               *segtool_train(recipe, images, tmp_path / "run", "--max-steps", "3", "--set", "train.batch_size=2",
                              "--set", "train.ckpt_every=10")[1:]]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on cpu x 2" in result.stderr
    # Only rank 0 reports, writes checkpoints and logs.
    assert result.stdout.count("final checkpoint:") == 1
    final = tmp_path / "run" / "checkpoints" / "step-00000003"
    assert CheckpointManager(final.parent).latest() == final
    _, state = CheckpointManager.load(final)
    assert state["step"] == 3
    steps, _ = log_rows(tmp_path / "run")
    assert [r["step"] for r in steps] == [1, 2, 3]


DDP_HELPER = """\
import hashlib, json, os, sys
import torch
sys.path.insert(0, {tests!r})
from conftest import tiny_config
from test_training import SyntheticImages
from scvae.training.trainer import TrainConfig, Trainer

torch.set_num_threads(1)
rank = int(os.environ["RANK"])
seen = []

class Recording(SyntheticImages):
    def __getitem__(self, key):
        seen.append(key[0])
        return super().__getitem__(key)

hashes = {{}}

class HashingTrainer(Trainer):
    def _checkpoint(self, env, model, *args):
        blob = b"".join(t.detach().cpu().numpy().tobytes() for t in model.state_dict().values())
        hashes[args[-2]] = hashlib.sha256(blob).hexdigest()
        return super()._checkpoint(env, model, *args)

config = TrainConfig(batch_size=2, lr=3e-3, resolution=16, max_steps=3, ckpt_every=1, log_every=1, seed=0)
HashingTrainer(tiny_config(), config, Recording(), sys.argv[1]).fit()
with open(os.path.join(sys.argv[1], f"rank{{rank}}.json"), "w") as f:
    json.dump({{"hashes": hashes, "seen": seen}}, f)
"""


def test_ddp_ranks_keep_identical_parameters(tmp_path):
    helper = tmp_path / "ddp_helper.py"
    helper.write_text(DDP_HELPER.format(tests=str(ROOT / "tests")))
    command = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(helper), str(tmp_path / "run")]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    # The ranks read different images, so equal weights mean the gradients were averaged.
    assert ranks[0]["seen"] and not set(ranks[0]["seen"]) & set(ranks[1]["seen"])
    assert set(ranks[0]["hashes"]) == {"1", "2", "3"}
    assert ranks[0]["hashes"] == ranks[1]["hashes"]
    assert len(set(ranks[0]["hashes"].values())) == 3  # and they did train
    saved = weights(tmp_path / "run" / "checkpoints" / "step-00000003")
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in saved.values())).hexdigest()
    assert digest == ranks[0]["hashes"]["3"]


def test_ssim_in_torch_matches_scikit_image():
    """The model library computes SSIM itself (no scikit-image in scvae); it must give the same numbers."""
    from skimage.metrics import structural_similarity

    from scvae.training.metrics import ssim

    rng = np.random.default_rng(0)
    a = rng.random((3, 3, 40, 36))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    b[1] = a[1]                                  # an identical pair: SSIM 1
    ours = ssim(torch.from_numpy(b), torch.from_numpy(a))
    theirs = [structural_similarity(x.transpose(1, 2, 0), y.transpose(1, 2, 0), channel_axis=-1, data_range=1.0,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
              for x, y in zip(b, a)]
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours[1] == pytest.approx(1.0)
