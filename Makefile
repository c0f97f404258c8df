# The two commands of this repository (see README.md):
#   make book   build the book from freshly executed notebooks, on the built-in synthetic data
#   make test   unit tests, the notebooks against their stored outputs (nbval), a book build check, and the drawing
#               pad in headless Chromium (JupyterLab and the built book)
#   make serve  serve the built book on localhost (the drawing pad's module scripts do not load from file://)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Progress bars belong to interactive runs; stored outputs and their checks run without them.
export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0
export MPLBACKEND := module://matplotlib_inline.backend_inline
# The chapters' training-dependent figures are checked against their committed records (README, "Testing contract");
# `make records` rewrites them.
export SBIR_RECORD ?= check

.PHONY: help install data notebooks records book html serve test unit nbval book-check browser clean

help:
	@echo "make book   execute the notebooks (only those whose inputs changed) and build _build/html"
	@echo "make test   unit tests + nbval on the stored notebook outputs + a book build check + browser tests"
	@echo "make serve  serve the built book on http://127.0.0.1:$(PORT)/ (PORT=... to change)"
	@echo "make records  re-execute every chapter and rewrite its record of training-dependent figures"

# uv installs the same pinned versions as pip (constraints.txt), with parallel downloads: 23 s instead of 65 s here.
# Unlike pip, uv leaves the bytecode to the first import, and where PYTHONDONTWRITEBYTECODE is set (as on this
# project's machines) it is never written: every kernel, test and training worker would compile torch and sympy again,
# seconds each. --compile-bytecode compiles it once, at install time.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt -e ".[book,dev]"
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(PY) -c "from sbir_core.data.synthetic import ensure_synthetic; print('synthetic data:', ensure_synthetic('book', 0))"

notebooks: data
	$(PY) tools/execute_notebooks.py

# From an empty run cache, so that every figure and every chapter's time comes from training it.
records: data
	rm -rf runs/cache
	SBIR_RECORD=write $(PY) tools/execute_notebooks.py --force

# onnxruntime-web for the drawing pad's page: fetched from npm (pinned, checksummed), not committed.
ORT_WEB := book/_vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm
$(ORT_WEB):
	bash tools/vendor_ort_web.sh

html: $(STAMP) $(ORT_WEB)
	$(VENV)/bin/jupyter-book build . -W --keep-going --quiet
	@echo "Book built: serve it with \`make serve\`, or open file://$(CURDIR)/_build/html/index.html"

book: notebooks html

PORT ?= 8000
serve:
	@test -f _build/html/index.html || { echo "no built book in _build/html: run make book first"; exit 2; }
	@echo "Serving the book at http://127.0.0.1:$(PORT)/ (the drawing pad: http://127.0.0.1:$(PORT)/notebooks/07_draw_it_yourself.html); Ctrl-C stops it"
	$(PY) -m http.server --bind 127.0.0.1 --directory _build/html $(PORT)

unit: $(STAMP)
	$(VENV)/bin/pytest tests/ -q -m "not browser"

nbval: data
	$(VENV)/bin/pytest -q --nbval --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg \
		-p no:cacheprovider notebooks/

book-check: $(STAMP) $(ORT_WEB)
	rm -rf _build/check
	$(VENV)/bin/jupyter-book build . -W --keep-going --quiet --path-output _build/check
	test -f _build/check/_build/html/index.html
	@echo "Book build check passed: _build/check/_build/html/index.html"

# The drawing pad in headless Chromium: JupyterLab running chapter 07, and the book built by book-check, served on
# localhost (tests/test_browser.py). Needs Debian's chromium (.ci/run installs it).
browser: $(STAMP)
	SBIR_BOOK_HTML=_build/check/_build/html $(VENV)/bin/pytest tests/test_browser.py -q -m browser -p no:cacheprovider

test: unit nbval book-check browser

clean:
	rm -rf _build runs/cache
