# The two quick-start commands: `make demo` (set up, train if needed, recommend) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/harmonya demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)  # about 2 hours on 2 cores
	$(BIN)/harmonya demo > /dev/null  # latency.py needs models/default
	$(BIN)/python bench/train_time.py
	$(BIN)/python bench/train_time.py --model two-tower
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/load.py --model models/default
	$(BIN)/harmonya evaluate --model two-tower --model unified --out runs/evaluation

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache *.egg-info
