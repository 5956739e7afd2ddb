# Entry points for a fresh machine: `make demo`, `make test` (the whole suite, every
# hypothesis example) and `make test-fast` (the tier to run while editing).
# Each creates .venv, installs quiltc into it, and runs; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean mcu-toolchain

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
	QUILTC_TEST_PROFILE=ci $(BIN)/python -m pytest -q

# A tenth of each hypothesis budget (tests/support/tiers.py), no test marked slow, on two
# workers: one pytest process idles while each compiler or emulator it starts runs, so two
# keep two cores busy and take half the time.
test-fast: $(STAMP) mcu-toolchain
	QUILTC_TEST_PROFILE=dev $(BIN)/python -m pytest -q -m "not slow" -n 2

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) mcu-toolchain
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/matmul.py
	$(BIN)/python benchmarks/ragged_encoder.py
	$(BIN)/python benchmarks/mcu_weightpool.py
	$(BIN)/python benchmarks/fusion.py
	$(BIN)/python benchmarks/dynamic_gemm.py

clean:
	rm -rf $(VENV) build *.egg-info

# A fuzz campaign (tests/support/fuzz*.py): PROGRAMS random dense, int32 and ragged programs
# with random schedules, compiled and compared with the interpreter and numpy, the ragged
# ones under ASan+UBSan, one worker per core. SEED defaults to one drawn from the clock and
# printed; `make fuzz SEED=123 PROGRAMS=5000` reruns a campaign, and
# `.venv/bin/python scripts/fuzz.py --seed 123 --replay 417` reruns one program of it.
SEED ?=
PROGRAMS ?= 5000
.PHONY: fuzz
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --programs $(PROGRAMS) $(if $(SEED),--seed $(SEED))
