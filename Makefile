# Two commands do all the set-up on a fresh machine (see README.md):
#   make book   creates .venv, installs everything, checks the data and builds the HTML book into book/_build/html
#   make test   creates or reuses .venv and runs the notebook tests (nbdev-test) and pytest
SHELL := /bin/bash
VENV  ?= .venv
BIN   := $(VENV)/bin
PY    := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: install test book export-check clean
install: $(STAMP)

# torch is pinned and installed first: a bare `torch` requirement would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 "setuptools>=77" wheel
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[dev]"
	touch $@

# two notebooks at a time, one thread each: oversubscribed torch threads are 10-20x slower on 2 cores
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test --n-workers 2 --timing
	OMP_NUM_THREADS=1 $(BIN)/pytest -q

# CI also checks that the package is exactly what the notebooks export
export-check: $(STAMP)
	$(BIN)/nbdev-export
	git diff --exit-code --stat -- mrc_book || (echo "nbdev-export changed mrc_book/: export the notebooks and commit"; exit 1)
	test -z "$$(git status --porcelain -- mrc_book)" || (git status --porcelain -- mrc_book; echo "untracked files in mrc_book/"; exit 1)

book: $(STAMP)
	$(BIN)/mrc data check
	$(PY) book/build.py

clean:
	rm -rf book/_build book/_src
