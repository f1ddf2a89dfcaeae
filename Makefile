# `make run`: set up, make sure a model exists (the demo model if none), open the app.
# `make test`: set up and run the whole test suite (what .ci/run calls).
SHELL := /bin/bash
VENV ?= .venv
# The newest Python 3.10+ on PATH (a Mac's own python3 is Xcode's 3.9, which lora-tui cannot run on).
PYTHON ?= $(firstword $(foreach candidate,python3.13 python3.12 python3.11 python3.10 python3,\
	$(shell command -v $(candidate) >/dev/null 2>&1 && $(candidate) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && echo $(candidate))))
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# MLX's Linux CPU wheel bundles a reference BLAS that is ~30x slower than
# OpenBLAS; preload Debian's OpenBLAS (see ENVIRONMENT.md). Macs use Metal.
ifeq ($(shell uname -s),Linux)
export LD_PRELOAD = $(firstword $(wildcard /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3))
endif

.PHONY: run test bench setup setup-dev python blas tmux clean

run: setup blas
	@$(BIN)/lora-tui models list --json | $(BIN)/python -c 'import json,sys; sys.exit(0 if any(m["format"] == "mlx" for m in json.load(sys.stdin)) else 1)' \
		|| $(BIN)/lora-tui models demo
	$(BIN)/lora-tui

test: setup-dev blas tmux
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Benchmarks against the reference implementations; results go to BENCHMARKS.md.
bench: setup-dev blas tmux
	$(BIN)/python bench/tokens.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/chat.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/responsiveness.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/gguf_import.py
	$(BIN)/python bench/eval.py
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/run_queue.py
	$(BIN)/python bench/samples.py
	$(BIN)/python bench/replay.py
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/dpo.py
	$(BIN)/python bench/grpo.py

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml | python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[names]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@# torch + peft for the PEFT round-trip test: torch only from a local wheel (never a CUDA download), its deps from the index
	-$(BIN)/python -m pip install --quiet --no-index --no-deps torch && $(BIN)/python -m pip install --quiet -e ".[peft-check]"
	@# llama.cpp for the GGUF export tests; where it cannot compile they are skipped, saying so
	-$(BIN)/python -m pip install --quiet -e ".[gguf-check]"
	touch $(VENV)/.installed $@

python:
	@test -n "$(PYTHON)" || { echo "lora-tui needs Python 3.10 or newer: install one (e.g. brew install python@3.12, or from python.org), then run make again." >&2; exit 1; }

blas:
ifeq ($(shell uname -s),Linux)
	@ls /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || { \
		echo "Installing OpenBLAS: MLX's CPU backend is ~30x slower without it"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libopenblas0-pthread; }
endif

# The terminal smoke test runs lora-tui inside tmux.
tmux:
	@command -v tmux >/dev/null || { \
		if command -v apt-get >/dev/null; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tmux; \
		elif command -v brew >/dev/null; then brew install tmux; fi; }

clean:
	rm -rf $(VENV) tests/.cache .pytest_cache
