# Quick start: `make demo` trains the CSA on the built-in data, `make test` runs the suite.
# Both create the virtual environment in .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo lint test test-heavy test-all profile bench clean

venv: $(STAMP)

# The live window's tests (tests/inference/test_window.py) need an OpenCV with HighGUI, which the
# package's headless one has not: opencv-python of the same version goes into $(VENV)/gui-opencv,
# outside site-packages (two OpenCV wheels in one site-packages overwrite each other's cv2), and
# the tests put it on the command's PYTHONPATH. Without it those tests skip.
$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --upgrade --no-deps --target $(VENV)/gui-opencv \
		"opencv-python==$$($(PY) -c "from importlib.metadata import version; print(version('opencv-python-headless'))")" \
		|| echo "opencv-python could not be installed in $(VENV)/gui-opencv: the live-window tests will skip"
	touch $(STAMP)

demo: venv
	$(PY) -m csa_keras.train --recipe quick --output runs/demo

# Style (ruff) and the import contracts of pyproject.toml (import-linter).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The suite in three tiers: make test (what a change is checked with), make test-heavy (integration
# runs of a minute or more: the VRN's multi-split training, the comparison, notebook 3, the light
# install; CI runs it after make test), make test-all (everything, the slow tests included).
test: lint
	$(PY) -m pytest -q -m "not slow and not heavy" --durations=15

test-heavy: venv
	$(PY) -m pytest -q -m "heavy and not slow" --durations=10

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
