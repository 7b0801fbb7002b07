# Every target installs what it needs first, so each works on a fresh machine.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench bench-gpu site screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[offline,dev,detection]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/lt-bench sweep --methods ce causal_tde --dataset mnist_lt --seeds 0 1 2 --output demo-results

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) benchmarks/input_pipeline.py --channels-last --compile

bench-gpu: install
	$(PYTHON) benchmarks/gpu_train.py

# The committed results site, regenerated from results/records (tests/test_site.py checks it).
site: install
	$(VENV)/bin/lt-bench site --output results --to results/site

# PNGs of the site's main pages for the README, in the system's headless chromium.
screenshots: site
	$(PYTHON) -m lt_bench.site.screenshots results/site docs/screenshots --dataset mnist_lt

lint: install
	$(VENV)/bin/ruff check lt_bench methods tests benchmarks
	$(VENV)/bin/ruff format --check lt_bench methods tests benchmarks

format: install
	$(VENV)/bin/ruff format lt_bench methods tests benchmarks
	$(VENV)/bin/ruff check --fix lt_bench methods tests benchmarks

clean:
	rm -rf $(VENV) demo-results .pytest_cache
