# approxsim: `make demo` runs the bundled default, `make test` runs every check.
# Both create (or reuse) the virtual environments they need and install into them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALESIM_VENV := .venv-scalesim
# SCALE-Sim 3.0.0 fails under numpy 2 and needs pandas 2.2: it gets an environment of its own
# (reference/scalesim.md) and runs as a subprocess; the project itself is not pinned.
SCALESIM_PKGS := scalesim==3.0.0 numpy==1.26.4 pandas==2.2.3

.PHONY: demo test lint bench bench-sweep study venv scalesim-env validate clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,torch,onnx,models,rtl,sweep,plot]'
	touch $@

$(SCALESIM_VENV)/.installed:
	$(PY) -m venv $(SCALESIM_VENV)
	$(SCALESIM_VENV)/bin/python -m pip install -q $(SCALESIM_PKGS)
	touch $@

venv: $(VENV)/.installed
scalesim-env: $(SCALESIM_VENV)/.installed

demo: venv
	$(BIN)/approxsim run arch_configs/tpu_like_128x128_ws.yaml workloads/networks/resnet50.yaml

lint: venv
	$(BIN)/ruff check simulator tests benchmarks analysis tools
	$(BIN)/mypy

test: venv scalesim-env lint
	APPROXSIM_REQUIRE_SCALESIM=1 $(BIN)/python -m pytest

validate: venv scalesim-env
	$(BIN)/approxsim validate scalesim

bench: venv
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/sparse.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/engine_speed.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/sweep_point.py

bench-sweep: venv
	$(BIN)/python benchmarks/sweep.py

study: venv
	$(BIN)/python analysis/dse_study.py

clean:
	rm -rf $(VENV) $(SCALESIM_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
