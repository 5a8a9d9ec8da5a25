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
