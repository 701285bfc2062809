# prompttune — `make reproduce` runs the active profile of params.yaml end to end; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv reproduce test test-fast lint format bench clean browser

venv: $(VENV)/.installed

# Pinned dependencies (torch==2.13.0 among them), then the package itself, editable. On a package index whose
# torch==2.13.0 is the CUDA build (plain PyPI on Linux: several GB), `make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# installs the CPU wheel of the same version first.
TORCH_INDEX ?=
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet --index-url $(TORCH_INDEX) "$$(grep '^torch==' requirements.lock)")
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Configure → fetch → train every stage → studies → aggregate → report, through DVC; prints the report's path.
# `prompttune decide` runs the adaptive design's rounds when the profile has grid.decide, else one `dvc repro`.
reproduce: venv
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "error: run inside a git clone (DVC needs git)"; exit 2; }
	@test -d .dvc || $(BIN)/dvc init --quiet
	$(BIN)/prompttune decide
	@echo "report: $$(realpath reports/$$($(BIN)/python -c 'import yaml; print(yaml.safe_load(open("params.yaml")).get("profile") or "custom")').html)"

# Headless Chromium (+ a font) for the tests that open the HTML report (tests/browser.py), from apt (Debian).
# Does nothing when a Chromium is already on PATH; fails when it cannot install one.
CHROMIUM_NAMES := chromium chromium-browser google-chrome
browser:
	@for b in $(CHROMIUM_NAMES); do command -v $$b >/dev/null 2>&1 && { echo "browser: $$(command -v $$b)"; exit 0; }; done; \
	command -v apt-get >/dev/null 2>&1 || { echo "error: no Chromium on PATH and no apt-get to install it" >&2; exit 1; }; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "error: no Chromium on PATH; installing it needs root or sudo" >&2; exit 1; fi; \
	set -ex; $$SUDO apt-get update; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core; \
	chromium --version

test: venv
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q --durations=15

test-fast: venv
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q -m "not e2e"

# Per-step cost of every objective relative to plain cross-entropy, and the verdicts' error rates and power
# (prints tables; the calibration takes about an hour on 2 cores at its default replicates).
bench: venv
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/objective_cost.py --threads 1 --repeats 2
	$(BIN)/python benchmarks/verdict_calibration.py

lint: venv
	$(BIN)/ruff check prompttune tests benchmarks examples
	$(BIN)/ruff format --check prompttune tests benchmarks examples

format: venv
	$(BIN)/ruff format prompttune tests benchmarks examples
	$(BIN)/ruff check --fix prompttune tests benchmarks examples

clean:
	rm -rf runs results data configs backbones reports/*.html .snakemake
