# The two commands of the README: `make demo` and `make test`.
# Everything is installed into .venv/ from the project's own files.

PYTHON    ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
DEMO      := demo
ROWS      ?= 200000

.PHONY: demo test test-fast test-system-packages bench bench-quick clean

# the engine and what it needs to run (make demo)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# plus the test and benchmark tools and the cluster extras (make test, make bench)
$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

## demo: generate a sample dataset and run the pipeline in auto mode (no server needed)
demo: $(STAMP)
	$(BIN)/engine generate $(DEMO)/sales.csv --rows $(ROWS) --seed 42
	$(BIN)/engine run $(DEMO)/sales.csv --output $(DEMO)/output

## test: the whole test suite
test: $(DEV_STAMP) test-system-packages
	$(BIN)/python -m pytest -ra

## test-fast: everything but the tests marked slow
test-fast: $(DEV_STAMP) test-system-packages
	$(BIN)/python -m pytest -ra -m "not slow"

## test-system-packages: Debian packages the tests run for real (installed once, as root):
## headless Chromium renders the HTML report, the Prometheus Pushgateway receives pushes,
## Graphviz renders `engine dag` as SVG and PNG
TEST_DEBS := chromium:chromium fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
             prometheus-pushgateway:prometheus-pushgateway graphviz:dot postgresql:pg_ctlcluster
test-system-packages:
	@missing=""; for pair in $(TEST_DEBS); do package=$${pair%%:*}; probe=$${pair#*:}; \
	  if [ -e "$$probe" ] || command -v "$$probe" >/dev/null 2>&1; then :; else missing="$$missing $$package"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "the tests need these Debian packages:$$missing (apt-get install -y$$missing, as root)" >&2; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

## bench: the full benchmark suite (1k to 10M rows; BENCH_ARGS=--with-100m adds 100M), then
## the incremental-run benchmark (a year of daily files plus one day), both in RESULTS.md
bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/incremental.py
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

## bench-quick: the quick variant (small sizes, fewer repetitions; a few minutes)
bench-quick: $(DEV_STAMP)
	$(BIN)/python benchmarks/run.py --quick $(BENCH_ARGS)

## image: the container image for the job, the scheduler and the workers
## (cluster/container/Containerfile): tagged registry.example.com/sales-engine:<version>, saved
## as build/sales-engine-<version>.oci.tar; installs podman and the rest as root when missing,
## and builds nothing when its sources have not changed (docs/container.md)
.PHONY: image
image:
	bash cluster/container/build-image.sh

clean:
	rm -rf $(VENV) .venv-rentgen $(DEMO) .pytest_cache build *.egg-info
