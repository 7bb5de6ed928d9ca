# cifarkit: every target bootstraps .venv from requirements.lock the first time it is needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
# GPU=1 also installs the CUDA libraries (requirements-gpu.lock, the gpu extra) on top of
# requirements.lock; it has its own stamp, so adding GPU=1 to a CPU venv installs them once.
ifeq ($(GPU),1)
LOCKS := requirements.lock requirements-gpu.lock
STAMP := $(VENV)/.cifarkit-installed-gpu
else
LOCKS := requirements.lock
STAMP := $(VENV)/.cifarkit-installed
endif
KERNEL := cifarkit

.DEFAULT_GOAL := help
.PHONY: help venv test test-fast lint docs book chapter demo publish export fast-goals fast-goals-bf16 site-check recover backup mlflow-ui clean-book

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): $(LOCKS) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-input $(addprefix -r ,$(LOCKS))
	$(PY) -m pip install --quiet --no-input --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (cifarkit)" >/dev/null
	@touch $@

venv: $(STAMP)  ## create .venv from requirements.lock (done automatically by every target); GPU=1 adds the CUDA libraries

# The suite runs on two pytest-xdist workers: most tests wait on one core (process start-up,
# tracing, file writes), so two overlap; each file stays on one worker (tests/conftest.py).
TEST_WORKERS ?= 2
test: $(STAMP)  ## the whole test suite (data tests need CIFARKIT_DATA); TEST_WORKERS=1 runs it in one process
	$(PY) -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)

test-fast: $(STAMP)  ## unit tests only: no slow, data or browser tests
	$(PY) -m pytest -m "not slow and not data and not browser"

lint: $(STAMP)  ## ruff (checks, formatting, line length), mypy (core, data, runs, studies), the import-order contracts (imports only go downward, no cycles), and code nothing calls (vulture)
	$(VENV)/bin/ruff check cifarkit tests tools
	$(VENV)/bin/ruff format --check cifarkit tests tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/deadcode.py

REMOTE ?=
book: $(STAMP)  ## execute the chapters (PROFILE=smoke|cpu|full), build _build/html; REMOTE=url pulls first, PUSH=1 pushes after; RUNNER=ray [RAY_ADDRESS=host:port] trains on a Ray cluster; JOBS=N runs at once locally
	$(VENV)/bin/cifarkit book build --profile $(PROFILE) $(if $(REMOTE),--remote "$(REMOTE)") $(if $(PUSH),--push) \
	    $(if $(RUNNER),--runner $(RUNNER)) $(if $(RAY_ADDRESS),--address "$(RAY_ADDRESS)") $(if $(JOBS),--jobs $(JOBS))

chapter: $(STAMP)  ## re-execute one chapter only (others shown as last built): make chapter NAME=data PARAMS="seeds=5"
	$(VENV)/bin/cifarkit book chapter "$(NAME)" --profile $(PROFILE) --params "$(PARAMS)"

site-check: $(STAMP)  ## open every page of the built site (_build/html) in headless Chromium; run make book first
	CIFARKIT_REQUIRE_BROWSER=1 $(PY) -m pytest -s -m browser tests/browser

demo: $(STAMP)  ## presentation demo from cached runs (PROFILE=smoke|cpu), ending with a live prediction; IMAGES="a.jpg b.png" adds yours
	$(VENV)/bin/cifarkit demo --profile $(PROFILE) $(if $(IMAGES),--images $(IMAGES))

fast-goals: $(STAMP)  ## the fast recipe's benchmarks, configs/goals/fast.yaml (hours); rerun to go on: finished seeds and runs are kept
	$(VENV)/bin/cifarkit bench goals fast

fast-goals-bf16: $(STAMP)  ## the fast recipe's bfloat16 benchmarks, configs/goals/fast_bf16.yaml, for a CPU with avx512_bf16 or amx_bf16
	$(VENV)/bin/cifarkit bench goals fast_bf16

recover: $(STAMP)  ## restore artifacts/: make recover FILE=backup.tar, or REMOTE=s3://bucket/prefix (pull every run, verified)
	@test -n "$(FILE)$(REMOTE)" || { echo "error: pass FILE=path/to/backup.tar or REMOTE=s3://bucket/prefix" >&2; exit 2; }
	$(if $(REMOTE),$(VENV)/bin/cifarkit remote pull --remote "$(REMOTE)",$(VENV)/bin/cifarkit artifacts recover "$(FILE)")

backup: $(STAMP)  ## back up: make backup FILE=backup.tar (tar with sha256 manifest), or REMOTE=s3://bucket/prefix (push every run)
	@test -n "$(FILE)$(REMOTE)" || { echo "error: pass FILE=path/to/backup.tar or REMOTE=s3://bucket/prefix" >&2; exit 2; }
	$(if $(REMOTE),$(VENV)/bin/cifarkit remote push --remote "$(REMOTE)",$(VENV)/bin/cifarkit artifacts backup "$(FILE)")

publish: $(STAMP)  ## push the built site (_build/html) to the gh-pages branch; run make book first
	@test -f _build/html/index.html || { echo "error: no _build/html; run make book first" >&2; exit 2; }
	$(VENV)/bin/ghp-import --no-jekyll --push --force _build/html

export: $(STAMP)  ## inference export of a run: make export RUN=resnet20 FORMAT=savedmodel|onnx
	$(VENV)/bin/cifarkit export "$(or $(RUN),resnet20)" --profile $(PROFILE) --format $(or $(FORMAT),savedmodel)

mlflow-ui: $(STAMP)  ## serve the MLflow UI on the local store
	$(VENV)/bin/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/artifacts/mlflow.db}" --port 5000

docs: $(STAMP)  ## regenerate the README's measured figures and docs/benchmarks.md from artifacts/
	$(VENV)/bin/cifarkit docs update

clean-book:  ## remove the built site (executed-notebook cache is kept)
	rm -rf _build
