# Two entry points do all setup: `make demo` and `make test`. Each creates .venv with
# Python 3.11 (bpy==5.0.1 exists for CPython 3.11 only) and installs only when
# pyproject.toml or constraints.txt changed since the last install.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3.11)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TYPECHECK_VENV := .venv-typecheck
PIP_FLAGS := -q --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint typecheck extension venv clean bwrap

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	@touch $@

venv: $(STAMP)

# Farm workers run under bubblewrap (farm/os_sandbox.py); root installs it where missing.
bwrap:
	@command -v bwrap >/dev/null || { test "$$(id -u)" = 0 && \
		{ apt-get install -y bubblewrap || { apt-get update && apt-get install -y bubblewrap; }; }; } \
		|| { echo "bubblewrap is missing: sudo apt-get install bubblewrap" >&2; exit 1; }

demo: $(STAMP) bwrap
	$(BIN)/derender demo

test: $(STAMP) bwrap
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy runs in its own environment: fake-bpy-module and the real bpy cannot share one.
$(TYPECHECK_VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(TYPECHECK_VENV)/bin/python || $(PYTHON) -m venv $(TYPECHECK_VENV)
	$(TYPECHECK_VENV)/bin/pip install $(PIP_FLAGS) mypy fake-bpy-module-5-0 numpy pyzmq \
		"RestrictedPython>=8.4" pillow gymnasium
	@touch $@

typecheck: $(TYPECHECK_VENV)/.installed
	$(TYPECHECK_VENV)/bin/mypy --config-file pyproject.toml .

extension: $(STAMP)
	$(BIN)/derender extension build --out dist

clean:
	rm -rf $(VENV) $(TYPECHECK_VENV) dist build *.egg-info
