# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv, installs quiltc into it, and runs; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean mcu-toolchain

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Cortex-M cross compiler, newlib and QEMU: the script returns at once when they are there.
mcu-toolchain:
	@sh scripts/install-mcu-toolchain.sh

demo: $(STAMP) mcu-toolchain
	$(BIN)/python -m quiltc.demo

test: $(STAMP) mcu-toolchain
	$(BIN)/python -m pytest -q

bench: $(STAMP) mcu-toolchain
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/matmul.py
	$(BIN)/python benchmarks/ragged_encoder.py
	$(BIN)/python benchmarks/mcu_weightpool.py

clean:
	rm -rf $(VENV) build *.egg-info
