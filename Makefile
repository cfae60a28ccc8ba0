# Two entry points that work on a fresh clone (see README):
#   make demo   set up .venv and run the main job
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= dev,vision,hardware,sim,dataset,serve,train
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(BIN)/robostack launch launch/diagnostics.yaml --duration 10 --status-every 2

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/robostack bench transport --quick
	$(BIN)/robostack bench timer

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
