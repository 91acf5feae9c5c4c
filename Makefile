# `make repro` runs the pipeline, `make test` the tests; each creates .venv and installs if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stage commands in dvc.yaml call `python`: the venv's must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
# Material for MkDocs prints a banner about its successor on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: repro sync test test-fast docs bench lint lock ui runs plots serve team-up team-down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch goes first and alone: with it in place no resolver ever reaches for a CUDA build
# on a CPU machine (on a GPU machine the same pin takes PyPI's CUDA build). Then the recurrences'
# step kernels are compiled (about a second; where they cannot be, it says why and training
# uses the slower PyTorch-operations path).
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	$(BIN)/python -m rnnlm.neural.native.library
	touch $@

# The team extra too: the tests of the team stack start it (tests/test_team.py).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs,team]'
	touch $@

$(VENV)/.installed-team: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[team]'
	touch $@

# Then the MLflow store brought in line with the workspace's models (a no-op when evaluate just
# did it; after a clone, a pull or an emptied store, it records their runs and registers them).
# Ends with the models compared, whichever stage ran last.
repro: $(VENV)/.installed
	dvc repro
	rnnlm sync
	@cat reports/comparison.md

# The store sync alone: `rnnlm sync` (`rnnlm sync`).
sync: $(VENV)/.installed
	rnnlm sync

# Lint, type-check and build the documentation first: they take seconds, the tests minutes.
test: $(VENV)/.installed-test
	ruff check .
	mypy
	mkdocs build --strict --quiet
	python -m pytest

# The tests not marked slow (no dvc repro, subprocess training, server or fault injection).
test-fast: $(VENV)/.installed-test
	ruff check .
	python -m pytest -m "not slow"

# The documentation site, built into site/ with every link and reference checked;
# `mkdocs serve` shows it on http://127.0.0.1:8000 while you edit docs/.
docs: $(VENV)/.installed-test
	mkdocs build --strict

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	python bench/bench_data.py
	python bench/bench_stream.py
	python bench/bench_ngram.py

# The MLflow UI on the project's store (MLFLOW_TRACKING_URI is not read here: the UI serves
# the local store), on http://127.0.0.1:5000; it first prints the address of the runs list.
ui: $(VENV)/.installed
	rnnlm ui

# The champion of the registered model params.yaml trains (rnnlm-gru, ...), served by MLflow's
# scoring server on http://127.0.0.1:5001; `make serve NAME=rnnlm-ngram PORT=5002` for another,
# SERVE_ARGS='--max-new-tokens 20000 --timeout 120' to change a request's limits (see --help).
# docs/serving.md shows the requests it answers.
NAME ?=
PORT ?= 5001
SERVE_ARGS ?=
serve: $(VENV)/.installed
	rnnlm serve $(if $(NAME),--name $(NAME)) --port $(PORT) $(SERVE_ARGS)

# Every plot of `dvc plots show`, drawn into dvc_plots/offline.html: it opens without a network.
plots: $(VENV)/.installed
	rnnlm plots

# The project's runs, one table per corpus and level, best val bits per character first.
runs: $(VENV)/.installed
	rnnlm runs

# A team's stack on this machine, on 127.0.0.1 under $(TEAM_DIR): PostgreSQL, an S3 emulator and
# an MLflow server with basic-auth, on ports $(TEAM_PORT) (MLflow) and the next two (TEAM_PORT=0:
# any free ports). It prints the `export` lines a client needs on stdout (`eval "$$(make -s
# team-up)"`; `rnnlm team env` prints them again). `make team-down` stops all of it and deletes
# its database and bucket. See docs/teams.md.
TEAM_DIR ?= .team
TEAM_PORT ?= 5050
team-up: $(VENV)/.installed-team
	@rnnlm team up --dir $(TEAM_DIR) --port $(TEAM_PORT)

team-down: $(VENV)/.installed
	@rnnlm team down --dir $(TEAM_DIR)

lint: $(VENV)/.installed-test
	ruff check .
	mypy

# Re-pin every package from the working environment (torch without its local +cpu tag).
lock: $(VENV)/.installed-test
	{ head -n 3 constraints.txt; python -m pip freeze --exclude-editable \
	  | sed -e 's/^torch==\([0-9.]*\)+.*/torch==\1/'; } > constraints.txt.new
	grep -Eq '^pytorch-lightning==2\.6\.[23]$$' constraints.txt.new \
	  && { echo "refusing a malicious pytorch-lightning"; exit 1; } || true
	mv constraints.txt.new constraints.txt
