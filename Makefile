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

# The main job, all in the MuJoCo twin: the live graph (sim arm, two sim cameras, scripted
# operator, mirror) for a few episodes, then a seeded evaluation with videos and a report.
demo: setup
	MUJOCO_GL=egl $(BIN)/robostack launch launch/twin.yaml --set episodes=2 --duration 30 --status-every 5
	MUJOCO_GL=egl $(BIN)/robostack eval --task pick_place --policy expert --episodes 4 --workers 2 \
		--video out/demo/videos --out out/demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/robostack bench transport --quick
	$(BIN)/robostack bench timer

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
