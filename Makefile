# The two commands of the README: `make demo` and `make test`.
# Everything is installed into .venv/ from the project's own files.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo
ROWS   ?= 200000

.PHONY: demo test test-fast bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: generate a sample dataset and run the pipeline in auto mode (no server needed)
demo: $(STAMP)
	$(BIN)/engine generate $(DEMO)/sales.csv --rows $(ROWS) --seed 42
	$(BIN)/engine run $(DEMO)/sales.csv --output $(DEMO)/output

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -ra

## test-fast: everything but the tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow"

## bench: the full benchmark suite (1k to 10M rows; BENCH_ARGS=--with-100m adds 100M)
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

## bench-quick: the quick variant (small sizes, fewer repetitions; a few minutes)
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build *.egg-info
