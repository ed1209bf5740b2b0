# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := app

.PHONY: run serve test lint users kiosks faces install install-dev browser-deps postgres-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files re-run the install only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The first run registers this machine's browser as the kiosk: open the printed link in it.
run: install
	$(BIN)/flask db upgrade
	@$(BIN)/flask kiosks add kiosk --unless-registered --base http://127.0.0.1:5000
	$(BIN)/flask run --host 127.0.0.1 --port 5000

# Production serving: waitress threads in one process, which owns the kiosk camera.
# For a central site with browser cameras, run several (PORT=8001, 8002...) behind a proxy.
HOST    ?= 127.0.0.1
PORT    ?= 8000
THREADS ?= 8
SERVE_ARGS ?=
serve: install
	$(BIN)/flask db upgrade
	$(BIN)/python serve.py --host $(HOST) --port $(PORT) --threads $(THREADS) $(SERVE_ARGS)

# Browser tests drive Debian's Chromium through the playwright package (pinned in
# requirements-dev.txt); `playwright install` is never run, it downloads its own browser.
# Without root or apt the browser tests skip (and fail when CI=true).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	  || echo "browser-deps: could not install chromium; browser tests will not run"; \
	else echo "browser-deps: /usr/bin/chromium missing and not root; browser tests will not run"; fi

# PostgreSQL tests start a throwaway cluster from Debian's server binaries
# (tests/pg_cluster.py); without them they skip (and fail when CI=true).
postgres-deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql \
	  || echo "postgres-deps: could not install postgresql; PostgreSQL tests will not run"; \
	else echo "postgres-deps: PostgreSQL missing and not root; PostgreSQL tests will not run"; fi

test: install-dev browser-deps postgres-deps lint
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Operator commands, run with the project's own flask: `make users ARGS="list"`, `make kiosks ARGS="add hall"`.
users kiosks faces: install
	$(BIN)/flask $@ $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
