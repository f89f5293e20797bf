# One venv for everything; torch is installed first from its pinned CPU wheel so that pip never pulls CUDA builds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install system-deps test demo bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests drive for real (scripts/system-packages.txt); apt-get as root, else a clear message
system-deps:
	bash scripts/system-deps.sh

# Two pytest workers, one per core (pytest-xdist); a file's tests stay on one worker so they share its fixtures.
test: $(STAMP) system-deps
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -x -n $${PYTEST_WORKERS:-2} --dist loadfile --durations=25 tests

demo: $(STAMP)
	$(PY) recipes/demo.py

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(PY) -m ruff check pasero_hf recipes tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info
