# Quick start: `make demo` trains the CSA on the built-in data, `make test` runs the suite.
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-all profile bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: venv
	$(PY) -m csa_keras.train --preset quick --output runs/demo

test: venv
	$(PY) -m pytest -q -m "not slow"

test-all: venv
	$(PY) -m pytest -q

profile: venv
	$(PY) -m voting_resnet.profile

# The performance report; TORCH_PYTHON=... REFERENCE=.../torch_reference.py adds the PyTorch side.
bench: venv
	$(PY) benchmarks/run.py --output benchmarks/results \
		$(if $(TORCH_PYTHON),--torch-python $(TORCH_PYTHON) --reference $(REFERENCE))

clean:
	rm -rf runs .pytest_cache
