# SPDX-License-Identifier: Apache-2.0
# `make demo` and `make test` each bootstrap .venv (idempotently) and then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQS := requirements.txt requirements-dev.txt requirements-ros.txt
# DDS never leaves loopback on these machines; tests pick their own domain per run.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 57
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

ifdef ROS_DISTRO
VENV_FLAGS := --system-site-packages
ROS_REQS :=
else
VENV_FLAGS :=
ROS_REQS := -r requirements-ros.txt
endif

.PHONY: venv test lint demo figures clean
venv: $(VENV)/.installed

$(VENV)/.installed: $(REQS) setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt $(ROS_REQS)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

lint: venv
	$(BIN)/ruff check codedap_depth test benchmarks launch setup.py

test: venv lint
	$(BIN)/python -m pytest -q test

demo: venv
	$(BIN)/codedap-depth demo --out demo_out

# README figures of the PSF bank and a simulated capture, made by the CLI.
figures: venv
	$(BIN)/codedap-depth psf --out build/bank.npz --figure docs/psf_bank.png
	$(BIN)/codedap-depth simulate --scene motorcycle --psf build/bank.npz --noise 0.01 \
	    --out build/simulated_motorcycle
	cp build/simulated_motorcycle/figure.png docs/simulated_motorcycle.png

clean:
	rm -rf $(VENV) demo_out .pytest_cache
