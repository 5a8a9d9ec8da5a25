import os
import sys
from pathlib import Path

import pytest

# Tests never touch the network and never write into the user's caches.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.getbasetemp() / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("SEGTOOL_CACHE", str(tmp_path_factory.getbasetemp() / "segtool-cache"))
    monkeypatch.setenv("SEGTOOL_DATA", str(tmp_path_factory.getbasetemp() / "segtool-data"))


@pytest.fixture(autouse=True)
def _seeded():
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def tiny_config(**changes):
    """A model small enough to train in seconds on a CPU; d=2 gives 4x downsampling."""
    import scvae

    base = dict(d=2, base_channels=8, max_channels=16, num_res_blocks=1, code_dim=16, num_atoms=32, lista_steps=4,
                alpha=0.05)
    base.update(changes)
    return scvae.SCVAEConfig(**base)


PYTHON = sys.executable


def subprocess_env() -> dict:
    # Read at call time: the autouse fixtures point SEGTOOL_CACHE and HF_HOME at temporary folders.
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A random d=3 model saved as a checkpoint: the code grid is the model input / 8. Quality is
    not the point where it is used, only that the pipeline and the CLI handle everything."""
    import torch

    import scvae

    torch.manual_seed(0)
    return str(scvae.save_model(scvae.SCVAE(tiny_config(d=3)), tmp_path_factory.mktemp("tiny-model")))


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run `segtool ARGV` in-process: (exit code, stdout, stderr)."""
    from segtool.cli.app import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return info.value.code, out, err
