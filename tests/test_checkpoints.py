"""Model checkpoints load only what they claim to hold, and training checkpoints survive crashes."""

import json
import pathlib
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import scvae
from scvae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_model, save_model
from scvae.training.checkpoints import LATEST_FILE, STATE_FILE, CheckpointManager

from conftest import tiny_config


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def model():
    torch.manual_seed(1)
    return scvae.SCVAE(tiny_config())


@pytest.fixture
def saved(model, tmp_path):
    return save_model(model, tmp_path / "ckpt")


def rewrite_safetensors(path: pathlib.Path, edit_tensors=None, edit_config=None) -> None:
    """Rewrite a checkpoint's weights file, editing its tensors and/or the config in its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = dict(f.metadata())
    tensors = load_file(str(path))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        config = json.loads(metadata["config"])
        edit_config(config)
        metadata["config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)


# -- round trips --------------------------------------------------------------------------------

def test_directory_roundtrip(model, saved):
    assert (saved / WEIGHTS_FILE).is_file() and (saved / CONFIG_FILE).is_file()
    loaded = load_model(saved)
    assert loaded.config == model.config
    assert_same_weights(loaded, model)
    assert not loaded.training  # loaded models are ready for inference


def test_lone_safetensors_file_carries_its_config(model, saved, tmp_path):
    # Users pass single files around: the config must travel inside the file's metadata.
    alone = tmp_path / "elsewhere" / "model.safetensors"
    alone.parent.mkdir()
    shutil.copy(saved / WEIGHTS_FILE, alone)
    assert not (alone.parent / CONFIG_FILE).exists()
    assert_same_weights(load_model(alone), model)


def test_scvae_load_accepts_a_path(model, saved):
    assert_same_weights(scvae.load(saved), model)
    assert_same_weights(scvae.load(str(saved / WEIGHTS_FILE)), model)


def test_pt_state_dict_loads_with_weights_only(model, tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    # A bare state dict with config.json beside it ...
    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save(model.state_dict(), bare / "weights.pt")
    (bare / CONFIG_FILE).write_text(json.dumps(model.config.to_dict()))
    assert_same_weights(load_model(bare / "weights.pt"), model)
    # ... and a {"state_dict", "config"} bundle on its own.
    bundle = tmp_path / "bundle.pth"
    torch.save({"state_dict": model.state_dict(), "config": model.config.to_dict()}, bundle)
    assert_same_weights(load_model(bundle), model)
    assert calls == [True, True]


# -- refusals -----------------------------------------------------------------------------------

class _TouchOnUnpickle:
    """Unpickling this calls Path.touch(target): a stand-in for arbitrary code execution."""

    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return pathlib.Path.touch, (self.target,)


def test_malicious_pickle_is_refused_and_never_executed(model, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({**model.state_dict(), "payload": _TouchOnUnpickle(marker)}, evil)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(model.config.to_dict()))

    with pytest.raises(CheckpointError) as info:
        load_model(evil)
    assert str(evil) in str(info.value)
    assert "refused" in str(info.value)
    assert not marker.exists()

    # The payload is live: an unsafe load does run it. Without this the test could pass vacuously.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_truncated_safetensors(saved):
    weights = saved / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_model(saved)
    assert str(weights) in str(info.value)


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt"])
def test_random_bytes(tmp_path, model, name):
    path = tmp_path / name
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
                     .numpy().tobytes())
    (tmp_path / CONFIG_FILE).write_text(json.dumps(model.config.to_dict()))
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("key, value", [("num_atoms", 10 ** 9), ("code_dim", 10 ** 8), ("base_channels", 10 ** 9),
                                        ("lista_steps", 10 ** 9), ("d", 2.5), ("d", "abc")])
def test_a_config_declaring_an_impossible_model_is_refused_before_allocating(saved, key, value):
    def declare(config):
        config[key] = value

    config_path = saved / CONFIG_FILE
    config = json.loads(config_path.read_text())
    declare(config)
    config_path.write_text(json.dumps(config))
    rewrite_safetensors(saved / WEIGHTS_FILE, edit_config=declare)
    with pytest.raises(CheckpointError, match=f"invalid model config .*{key}") as info:
        load_model(saved)
    assert "\n" not in str(info.value)


def test_a_config_file_that_is_not_text_is_refused(saved):
    weights = saved / WEIGHTS_FILE
    save_file(load_file(str(weights)), str(weights), metadata={})   # the config only beside the weights
    (saved / CONFIG_FILE).write_bytes(b"\xff\xfe{not text")
    with pytest.raises(CheckpointError, match="not a text file") as info:
        load_model(saved)
    assert "\n" not in str(info.value)


def test_config_that_does_not_match_the_weights(saved):
    def more_atoms(config):
        config["num_atoms"] = 48

    config_path = saved / CONFIG_FILE
    config = json.loads(config_path.read_text())
    more_atoms(config)
    config_path.write_text(json.dumps(config))
    rewrite_safetensors(saved / WEIGHTS_FILE, edit_config=more_atoms)
    with pytest.raises(CheckpointError, match="do not match the config") as info:
        load_model(saved)
    assert str(saved / WEIGHTS_FILE) in str(info.value)


def test_nan_weights(saved):
    def poison(tensors):
        name = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = float("nan")

    rewrite_safetensors(saved / WEIGHTS_FILE, edit_tensors=poison)
    with pytest.raises(CheckpointError, match="NaN") as info:
        load_model(saved)
    assert str(saved / WEIGHTS_FILE) in str(info.value)


# -- training checkpoints -----------------------------------------------------------------------

def train_state(step: int) -> dict:
    return {"step": step, "rng_cpu": torch.get_rng_state(), "note": f"state {step}"}


def test_manager_roundtrip_holds_model_and_training_state(model, tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints", keep=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.loss(torch.zeros(2, 3, 16, 16))["loss"].backward()
    optimizer.step()
    path = manager.save(3, model, {**train_state(3), "optimizer": optimizer.state_dict()})
    assert path.name == "step-00000003" and manager.latest() == path
    assert (manager.root / LATEST_FILE).read_text().strip() == path.name
    loaded, state = CheckpointManager.load(path)  # torch.load(weights_only=True) inside
    assert_same_weights(loaded, model)
    assert state["step"] == 3
    fresh = torch.optim.Adam(loaded.parameters(), lr=1e-3)
    fresh.load_state_dict(state["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_crash_mid_save_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    import scvae.training.checkpoints as run_checkpoints

    manager = CheckpointManager(tmp_path / "checkpoints", keep=2)
    first = manager.save(1, model, train_state(1))

    real_write = run_checkpoints.atomic_write_bytes

    def write_then_die(path, data):
        real_write(path, data)  # the temporary directory is now complete ...
        raise KeyboardInterrupt("killed before the rename")  # ... but never renamed into place

    monkeypatch.setattr(run_checkpoints, "atomic_write_bytes", write_then_die)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        manager.save(2, model, train_state(2))
    monkeypatch.undo()

    assert not (manager.root / "step-00000002").exists()
    assert manager.latest() == first
    loaded, state = CheckpointManager.load(manager.latest())
    assert state["step"] == 1
    assert not torch.equal(next(loaded.parameters()), next(model.parameters()))

    # The next save clears the leftover temporary directory.
    assert list(manager.root.glob(".tmp-*"))
    manager.save(2, model, train_state(2))
    assert not list(manager.root.glob(".tmp-*"))
    assert manager.latest().name == "step-00000002"


def test_crash_before_latest_is_updated(model, tmp_path, monkeypatch):
    import scvae.training.checkpoints as run_checkpoints

    manager = CheckpointManager(tmp_path / "checkpoints", keep=2)
    first = manager.save(1, model, train_state(1))
    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(run_checkpoints, "atomic_write_text", disk_full)
    with pytest.raises(OSError):
        manager.save(2, model, train_state(2))
    # `latest` was never rewritten: it still names a complete checkpoint.
    assert manager.latest() == first
    CheckpointManager.load(first)


def test_pruning_keeps_the_newest(model, tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints", keep=2)
    for step in range(1, 6):
        manager.save(step, model, train_state(step))
    assert sorted(p.name for p in manager.root.iterdir() if p.is_dir()) == ["step-00000004", "step-00000005"]
    assert manager.latest().name == "step-00000005"


def test_latest_falls_back_to_newest_complete(model, tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints", keep=5)
    manager.save(1, model, train_state(1))
    second = manager.save(2, model, train_state(2))
    pointer = manager.root / LATEST_FILE

    pointer.unlink()
    assert manager.latest() == second

    # A newer step directory without its training state is incomplete: never resume from it.
    broken = manager.root / "step-00000003"
    broken.mkdir()
    shutil.copy(second / WEIGHTS_FILE, broken / WEIGHTS_FILE)
    shutil.copy(second / CONFIG_FILE, broken / CONFIG_FILE)
    pointer.write_text("step-00000003\n")
    assert manager.latest() == second

    pointer.write_text("step-00000009\n")  # names a directory that does not exist
    assert manager.latest() == second

    (second / STATE_FILE).unlink()
    assert manager.latest().name == "step-00000001"


def test_latest_on_an_empty_run(tmp_path):
    assert CheckpointManager(tmp_path / "nothing-here").latest() is None


def test_checkpoints_carry_their_model_type_and_a_second_backbone_plugs_in(model, tmp_path):
    """A checkpoint names its backbone; registering another type makes its checkpoints load with no new code."""
    import dataclasses

    import torch

    from scvae.checkpoint import MODEL_TYPES, register_model_type

    path = save_model(model, tmp_path / "scvae")
    from safetensors import safe_open

    with safe_open(str(path / WEIGHTS_FILE), "pt") as f:
        assert f.metadata()["model_type"] == "scvae"

    @dataclasses.dataclass
    class ToyConfig:
        width: int = 3

        @classmethod
        def from_dict(cls, data):
            return cls(**data)

        def to_dict(self):
            return dataclasses.asdict(self)

    class Toy(torch.nn.Module):
        model_type = "toy"

        def __init__(self, config):
            super().__init__()
            self.config = config
            self.weight = torch.nn.Parameter(torch.arange(float(config.width)))

    register_model_type("toy", ToyConfig, Toy)
    try:
        toy = Toy(ToyConfig(width=4))
        loaded = load_model(save_model(toy, tmp_path / "toy"))
        assert isinstance(loaded, Toy) and torch.equal(loaded.weight, toy.weight)
    finally:
        MODEL_TYPES.pop("toy")
    with pytest.raises(CheckpointError, match="model type 'toy' is not known"):
        load_model(tmp_path / "toy")
