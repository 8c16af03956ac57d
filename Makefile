# Two entry points do all setup: `make demo` and `make test`. Each environment is created
# once and reinstalled only when what it is built from changed (a stamp file per venv):
#   .venv           CPython 3.11 (bpy==5.0.1 exists for 3.11 only): workers, farm, main tests
#   .venv-trainers  CPython 3.11: the trainer packages (tests/trainers/requirements.txt) and
#                   derender client-side, no bpy; its tests talk to a farm run from .venv
#   .venv-client    CPython 3.12: `pip install .` with no extras, as a trainer machine does
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3.11)
PYTHON312 ?= env PYENV_VERSION=3.12.1 python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TYPECHECK_VENV := .venv-typecheck
TRAINERS_VENV := .venv-trainers
TRAINERS_STAMP := $(TRAINERS_VENV)/.installed
CLIENT_VENV := .venv-client
CLIENT_STAMP := $(CLIENT_VENV)/.installed
PIP_FLAGS := -q --disable-pip-version-check -c constraints.txt
# verl and OpenRLHF pin CUDA-only stacks (vLLM, flash-attn, deepspeed) and transformers
# versions that exclude each other; the suite installs them without their dependency sets
# and adds exactly what their reward paths import (listed in the requirements file).
TRAINER_NO_DEPS := verl==0.9.1 openrlhf==0.11.2
# .venv-client is a copy (pip install .), not an editable install: rebuilt when code changes.
CLIENT_SOURCES := $(shell git ls-files '*.py' ':!tests' ':!bench' 2>/dev/null) pyproject.toml

.PHONY: demo test test-main test-trainers lint typecheck extension venv trainers-venv \
	client-venv clean bwrap cairo

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	@touch $@

$(TRAINERS_STAMP): pyproject.toml constraints.txt tests/trainers/requirements.txt
	@test -x $(TRAINERS_VENV)/bin/python || $(PYTHON) -m venv $(TRAINERS_VENV)
	$(TRAINERS_VENV)/bin/pip install $(PIP_FLAGS) -r tests/trainers/requirements.txt
	$(TRAINERS_VENV)/bin/pip install $(PIP_FLAGS) --no-deps $(TRAINER_NO_DEPS)
	$(TRAINERS_VENV)/bin/pip install $(PIP_FLAGS) -e .
	@touch $@

$(CLIENT_STAMP): $(CLIENT_SOURCES)
	@test -x $(CLIENT_VENV)/bin/python || $(PYTHON312) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install -q --disable-pip-version-check .
	@touch $@

venv: $(STAMP)
trainers-venv: $(TRAINERS_STAMP)
client-venv: $(CLIENT_STAMP)

# Farm workers run under bubblewrap (farm/os_sandbox.py); root installs it where missing.
bwrap:
	@command -v bwrap >/dev/null || { test "$$(id -u)" = 0 && \
		{ apt-get install -y bubblewrap || { apt-get update && apt-get install -y bubblewrap; }; }; } \
		|| { echo "bubblewrap is missing: sudo apt-get install bubblewrap" >&2; exit 1; }

# The SVG environment renders with cairosvg, which loads the system's libcairo.
cairo:
	@ldconfig -p | grep -q 'libcairo\.so\.2' || { test "$$(id -u)" = 0 && \
		{ apt-get install -y libcairo2 || { apt-get update && apt-get install -y libcairo2; }; }; } \
		|| { echo "libcairo is missing: sudo apt-get install libcairo2" >&2; exit 1; }

demo: $(STAMP) bwrap cairo
	$(BIN)/derender demo

test: lint typecheck test-main test-trainers

test-main: $(STAMP) bwrap cairo
	$(BIN)/python -m pytest -q

# Real trainer packages against a farm that runs from .venv, and the 3.12 client install.
test-trainers: $(STAMP) $(TRAINERS_STAMP) $(CLIENT_STAMP) bwrap
	$(TRAINERS_VENV)/bin/python -m pytest -q tests/trainers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy runs in its own environment: fake-bpy-module and the real bpy cannot share one.
$(TYPECHECK_VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(TYPECHECK_VENV)/bin/python || $(PYTHON) -m venv $(TYPECHECK_VENV)
	$(TYPECHECK_VENV)/bin/pip install $(PIP_FLAGS) mypy fake-bpy-module-5-0 numpy pyzmq \
		pillow gymnasium
	@touch $@

# mypy reads the package by its name, whatever the checkout's directory is called.
typecheck: $(TYPECHECK_VENV)/.installed
	@mkdir -p build/typecheck && ln -sfn "$(CURDIR)" build/typecheck/derender
	cd build/typecheck && "$(CURDIR)/$(TYPECHECK_VENV)/bin/mypy" \
		--config-file "$(CURDIR)/pyproject.toml" -p derender

extension: $(STAMP)
	$(BIN)/derender extension build --out dist

clean:
	rm -rf $(VENV) $(TYPECHECK_VENV) $(TRAINERS_VENV) $(CLIENT_VENV) dist build *.egg-info
