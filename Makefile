# One entry point for the README's commands. Every target creates .venv when it is missing, installing the versions
# the suite passed with (constraints.txt); `make lock` refreshes that file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv (installed into the venv by pip, pinned like the rest) installs the same pins in about 17 s where pip takes about
# 26 s on a fresh machine; `make INSTALLER=pip ...` installs with pip alone. uv compiles bytecode only when asked,
# as pip always does: without it, where PYTHONDONTWRITEBYTECODE is set, every process the stack and the tests start
# compiles celery, kombu, FastAPI and the rest again (about 1.8 CPU-seconds each here).
INSTALLER ?= uv
ifeq ($(INSTALLER),uv)
INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt uv && $(BIN)/uv pip install --quiet \
	--compile-bytecode --python $(BIN)/python -c constraints.txt
else
INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt
endif

.PHONY: demo test lint simulator up lock clean matrix

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -e '.[dev,embedded,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/imsrep demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

simulator: $(STAMP)
	$(BIN)/imsrep simulator

up: $(STAMP)
	$(BIN)/imsrep up

# The newest versions pyproject.toml allows, installed in a fresh venv, pinned in constraints.txt. Run the whole
# suite (make test) before committing the new file.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet '.[dev,embedded,bench]'
	.lock-venv/bin/python .ci/freeze.py > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .state .pytest_cache

# The demo and the fast test tiers on Python 3.13, 3.14 and 3.15, each in a fresh clone inside a minimal Debian root
# (no compiler); needs root. `make matrix MATRIX_ARGS="--fresh 3.15"`; usage in .ci/matrix.
matrix:
	bash .ci/matrix $(MATRIX_ARGS)
