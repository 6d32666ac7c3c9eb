# Quick start: `make demo` trains the CSA on the built-in data, `make test` runs the suite.
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo lint test test-all profile bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(PY) -m csa_keras.train --recipe quick --output runs/demo

# Style (ruff) and the import contracts of pyproject.toml (import-linter).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q -m "not slow"

test-all: lint
	$(PY) -m pytest -q

profile: venv
	$(PY) -m voting_resnet.profile

# The performance report: Keras against the PyTorch reference (benchmarks/torch_reference.py)
# when torch is installed (pip install -e ".[bench]"), Keras alone otherwise.
bench: venv
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "$(PY) benchmarks/run.py --output benchmarks/results --torch-python $(PY) --reference benchmarks/torch_reference.py"; \
		$(PY) benchmarks/run.py --output benchmarks/results --torch-python $(PY) --reference benchmarks/torch_reference.py; \
	else \
		echo "torch is not installed: measuring Keras alone (pip install -e \".[bench]\" adds the PyTorch reference)"; \
		$(PY) benchmarks/run.py --output benchmarks/results; \
	fi

clean:
	rm -rf runs .pytest_cache
