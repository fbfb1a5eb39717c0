# One-command setup: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: that file is the CPU build; a looser pin pulls a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,clip]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fglab reproduce eng-wiki --out results/eng-wiki

test: $(STAMP)
	$(BIN)/ruff check fglab tests benchmarks examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check fglab tests benchmarks examples

clean:
	rm -rf $(VENV) .venv-cluster results build *.egg-info
