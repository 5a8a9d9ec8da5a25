"""Where segtool keeps files between runs: the code cache and downloaded datasets.

Standard library only: the command line shows these defaults in `--help` and checks the
flags that change them before any heavy import.

    cache root    $SEGTOOL_CACHE, else $XDG_CACHE_HOME/segtool, else ~/.cache/segtool
    codes         <cache root>/codes/<model digest>/   (SC-VAE codes of images already seen)
    datasets      $SEGTOOL_DATA, else <cache root>/data; one folder per dataset (cub200/, ...)
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SEGTOOL_CACHE"
DATA_ENV = "SEGTOOL_DATA"
CACHE_ROOT_TEXT = f"${CACHE_ENV}, else ~/.cache/segtool"   # how --help names the default
DATA_ROOT_TEXT = f"${DATA_ENV}, else ~/.cache/segtool/data"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segtool"


def codes_cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of cached codes under a cache root (the default root when None)."""
    return Path(root).expanduser() / "codes" if root is not None else cache_root() / "codes"


def data_home() -> Path:
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else cache_root() / "data"


def default_dataset_root(manifest_name: str) -> Path:
    """Where `data fetch` puts a dataset when no root is given, and where `eval` looks for it."""
    return data_home() / manifest_name
