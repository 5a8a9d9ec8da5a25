# Two commands do everything on a fresh machine: `make demo` and `make test`.
# torch is installed first, on its own, so that a CPU-only machine gets the CPU build
# (an unpinned torch in an empty venv resolves to a multi-GB CUDA build). Override with
# e.g. `make test TORCH_SPEC="torch==2.5.1"` or pre-install torch in .venv yourself.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test venv bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[test]"
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m segtool.cli.demo --out segtool-out/demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) segtool-out .pytest_cache
