# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := app

.PHONY: run serve test lint users kiosks faces install install-dev browser-deps postgres-deps clean \
        fast-dlib fast-dlib-deps test-fast-dlib

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# dlib's BLAS build (`make fast-dlib`) is the distribution "dlib", the prebuilt wheel "dlib-bin".
# Where the BLAS build is installed, the installs below read copies of the requirements without
# dlib-bin (in the venv, so that requirements-dev.txt's "-r requirements.txt" finds the copy):
# installing dlib-bin would silently overwrite the faster build's files.
HAS_FAST_DLIB = $(BIN)/python -c "import importlib.metadata as m; m.distribution('dlib')" 2>/dev/null
REQUIREMENTS_DIR = $$(if $(HAS_FAST_DLIB); then sed '/^dlib-bin/d' requirements.txt > $(VENV)/requirements.txt; \
	cp requirements-dev.txt $(VENV)/; echo "keeping dlib's BLAS build in $(VENV)" >&2; echo $(VENV)/; fi)

# Stamp files re-run the install only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r $(REQUIREMENTS_DIR)requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r $(REQUIREMENTS_DIR)requirements-dev.txt
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

# dlib compiled against OpenBLAS: the same version as dlib-bin, several times faster encodings.
# The wheel is built once (6-12 minutes on 2 cores, niced, 2 jobs) into a cache outside the
# repository, named by dlib version, Python tag, architecture and AVX2, so a second venv or a re-run
# installs it in seconds; then it replaces dlib-bin in $(VENV). `make fast-dlib VENV=.venv-x` for another venv.
DLIB_VERSION := $(shell sed -n 's/^dlib-bin==\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' requirements.txt)
# With AVX but not AVX2, dlib emulates its 8-integer SIMD and HOG detection ran 2x slower than
# dlib-bin's: where the processor has AVX2 it is compiled in, and such wheels are kept apart.
DLIB_CXXFLAGS := $(if $(shell grep -m1 -ow avx2 /proc/cpuinfo 2>/dev/null),-mavx2)
WHEEL_CACHE  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/facelogin/wheels/$(if $(DLIB_CXXFLAGS),avx2,default)
fast-dlib: fast-dlib-deps | $(BIN)/python
	@mkdir -p "$(WHEEL_CACHE)"
	@if $(BIN)/python -m pip download --quiet --no-deps --no-index --only-binary :all: --find-links "$(WHEEL_CACHE)" \
	    -d "$(WHEEL_CACHE)" dlib==$(DLIB_VERSION) 2>/dev/null; then \
	  echo "fast-dlib: dlib $(DLIB_VERSION) wheel found in $(WHEEL_CACHE)"; \
	else \
	  echo "fast-dlib: compiling dlib $(DLIB_VERSION) against OpenBLAS once (6-12 minutes; log in $(WHEEL_CACHE)/build.log)"; \
	  tmp=$$(mktemp -d) && \
	  CXXFLAGS="$(DLIB_CXXFLAGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 DLIB_USE_BLAS=ON DLIB_USE_LAPACK=ON DLIB_USE_CUDA=OFF DLIB_NO_GUI_SUPPORT=ON \
	    nice -n 19 $(BIN)/python -m pip wheel --no-cache-dir --no-deps --no-binary dlib -w "$$tmp" dlib==$(DLIB_VERSION) \
	    > "$(WHEEL_CACHE)/build.log" 2>&1 \
	  || { echo "fast-dlib: the build failed, see $(WHEEL_CACHE)/build.log"; rm -rf "$$tmp"; exit 1; }; \
	  mv "$$tmp"/dlib-*.whl "$(WHEEL_CACHE)/" && rm -rf "$$tmp"; \
	fi
	# dlib-bin goes only now that the wheel exists: a failed build leaves it working.
	$(BIN)/python -m pip uninstall --quiet --yes dlib-bin 2>/dev/null || true
	$(BIN)/python -m pip install --quiet --no-deps --no-index --force-reinstall --find-links "$(WHEEL_CACHE)" dlib==$(DLIB_VERSION)
	@$(BIN)/python -c "import dlib; assert dlib.DLIB_USE_BLAS; print('fast-dlib: dlib', dlib.__version__, 'with BLAS in $(VENV)')" \
	|| { echo "fast-dlib: the BLAS build does not load here; putting dlib-bin back"; \
	     $(BIN)/python -m pip uninstall --quiet --yes dlib; \
	     $(BIN)/python -m pip install --quiet $$(grep '^dlib-bin==' requirements.txt | cut -d' ' -f1); exit 1; }
	@$(MAKE) --no-print-directory install VENV=$(VENV)

# The BLAS build in a venv of its own beside dlib-bin's .venv (`make test` stays on dlib-bin): the
# whole suite on it, with the equality test of the two builds required, then the benchmarks of both
# builds. CI runs it after `make test`; the wheel cache makes a second run skip the compile.
BLAS_VENV := .venv-blas
test-fast-dlib: install-dev browser-deps postgres-deps
	@$(MAKE) --no-print-directory fast-dlib VENV=$(BLAS_VENV)
	@$(MAKE) --no-print-directory install-dev VENV=$(BLAS_VENV)
	FACELOGIN_BOTH_BUILDS=1 $(BLAS_VENV)/bin/python -m pytest
	$(BLAS_VENV)/bin/python bench/pipeline.py
	$(BLAS_VENV)/bin/python bench/login.py
	$(BLAS_VENV)/bin/python bench/enroll.py

# The compiler, CMake, Python's headers and OpenBLAS, from Debian when root.
fast-dlib-deps:
	@command -v dpkg-query >/dev/null || exit 0; missing=""; \
	for p in libopenblas-dev cmake g++ make; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	[ -f "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing="$$missing python3-dev"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "fast-dlib: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "fast-dlib: missing$$missing; run: sudo apt-get install$$missing"; exit 1; fi

# Operator commands, run with the project's own flask: `make users ARGS="list"`, `make kiosks ARGS="add hall"`.
users kiosks faces: install
	$(BIN)/flask $@ $(ARGS)

clean:
	rm -rf $(VENV) .venv-blas .pytest_cache
