# The two commands of the README: `make run` and `make test`. Both set up
# .venv themselves on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# torch is pinned and installed first: an open range pulls a multi-GB CUDA
# build on machines without a local CPU wheel.
TORCH  ?= torch==2.13.0
# every pip install takes the versions measured with (constraints.txt: numpy, jax, jaxlib, torch, ...)
PIP_C  := -c constraints.txt
PYTEST_ARGS ?=
# anvil (foundry's Ethereum node) for the evm+http:// tests: an npm package, installed into .tools/
ANVIL_PKG := @foundry-rs/anvil-linux-amd64@1.7.1
ANVIL  := .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: setup run test test-fast test-slow docs bench peers clean

setup: $(STAMP) $(ANVIL)

$(ANVIL):
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .tools --no-audit --no-fund --silent "$(ANVIL_PKG)" && test -x $(ANVIL); \
	else \
	  echo "npm not found: anvil (a real Ethereum node) is not installed, so the tests marked anvil will skip."; \
	  echo "Install Node.js and npm (e.g. apt-get install npm), then run make setup again."; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIP_C) "$(TORCH)"
	$(PY) -m pip install --quiet $(PIP_C) -e ".[all]"
	$(PY) -m vcompute.verify.freivalds.fused  # compile numba's kernels once, not in every test worker
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/vcompute run experiments/quickstart.toml

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)
	$(MAKE) docs

test-slow: setup
	$(PY) -m pytest -n 2 --dist loadgroup -m slow $(PYTEST_ARGS)

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html -q docs docs/_build/html

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b --quick || exit 1; done

# The peer schemes benchmarks/inference.py compares against (not in CI). toploc builds
# from source against the installed torch (C++ extension, ~2 min): its wheel does not
# import with torch 2.13, and build isolation would compile it against another torch.
peers: $(STAMP)
	$(PY) -m pip install $(PIP_C) --no-build-isolation --no-binary toploc "toploc==0.1.6"

clean:
	rm -rf docs/_build runs .pytest_cache
