# drl_control: reproducible setup, tests and demos on a bare Debian 12 + Python 3.11 machine.
#
#   make setup   .venv with pinned requirements (+ dev, bench), ROS 2 interfaces built into it,
#                drl_control installed editable. Stamp files make a re-run a no-op.
#   make test    ruff check . ; pytest -q   (in the venv)
#   make demo    drl-control demo
#   make bench   benchmarks/run_all.py, if present
#   make clean   drop build outputs and setup stamps (keeps .venv); distclean also drops .venv

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := setup

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := $(VENV)/.stamps

REQUIREMENTS := requirements.txt requirements-dev.txt requirements-bench.txt
# The torch pin is read from requirements.txt so that it lives in one place.
TORCH_PIN := $(shell grep -E '^torch==' requirements.txt)
INTERFACE_SOURCES := $(shell find ros2_ws/src ros2_ws/vendor -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: setup test lint pytest demo bench clean distclean

setup: $(STAMPS)/interfaces $(STAMPS)/editable $(STAMPS)/iproute2

# 1. The venv itself, with current pip/setuptools/wheel. The ROS wheels are cp311 only.
$(STAMPS)/venv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "make setup: $(PYTHON) is not Python 3.11 (the ROS 2 wheels are cp311 only)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	@mkdir -p $(STAMPS) && touch $@

# 2. torch first and alone (exact pin: the local CPU wheel), then everything else.
$(STAMPS)/requirements: $(STAMPS)/venv $(REQUIREMENTS)
	@test -n "$(TORCH_PIN)" || { echo "make setup: no 'torch==' line in requirements.txt" >&2; exit 1; }
	$(PIP) install "$(TORCH_PIN)"
	$(PIP) install $(addprefix -r ,$(REQUIREMENTS))
	$(PIP) check
	@touch $@

# 3. ROS 2 interface packages (ros2_ws/src/*) built with plain cmake into the venv.
$(STAMPS)/interfaces: $(STAMPS)/requirements scripts/build_interfaces.sh $(INTERFACE_SOURCES)
	scripts/build_interfaces.sh $(VENV)
	@touch $@

# 4. drl_control itself, editable.
$(STAMPS)/editable: $(STAMPS)/requirements setup.py pyproject.toml
	$(PIP) install --no-build-isolation --no-deps -e .
	@touch $@

# 5. iproute2's `ip` for tests/test_multihost.py (hosts as network namespaces, root only): installed
#    with apt-get where it is missing and we are root; elsewhere those tests skip and say why.
$(STAMPS)/iproute2: $(STAMPS)/venv
	@if ! command -v ip >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; } || true; fi
	@if command -v ip >/dev/null; then touch $@; \
	else echo "make setup: no iproute2 (ip); tests/test_multihost.py will skip" >&2; fi
# 5. Debian's chromium, for the browser-view test (tests/test_viz_browser.py: a real headless browser
#    with software GL). apt-get needs root, as on CI; elsewhere that test skips and says why.
#    The stamp is made only once chromium is there, so a later run as root installs it.
$(STAMPS)/chromium: | $(STAMPS)/venv
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "make: chromium is not installed and this is not root: the browser-view test will skip" >&2; fi; \
	fi
	@if command -v chromium >/dev/null; then touch $@; fi

test: lint pytest

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no test (e.g. early in the project): not a failure here.
# Modules that start real ROS 2 nodes each run in a pytest process of their own: rclpy contexts,
# executor threads and DDS participants of one module then cannot starve the next module's
# real-time nodes on a 2-core machine. Everything else runs in one process.
ROS_TEST_MODULES := $(sort $(wildcard tests/test_ros_*.py tests/test_faults_messages.py tests/test_faults_stale.py \
	tests/test_faults_workers.py tests/test_demo.py tests/test_interfaces.py tests/test_multihost.py))

pytest: setup $(STAMPS)/chromium
	@rc=0; $(PY) -m pytest -q $(addprefix --ignore=,$(ROS_TEST_MODULES)) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests"; rc=0; fi; \
	for module in $(ROS_TEST_MODULES); do \
	  echo "== $$module"; $(PY) -m pytest -q $$module || { r=$$?; [ $$r -eq 5 ] || rc=$$r; }; \
	done; exit $$rc

demo: setup
	$(VENV)/bin/drl-control demo

bench: setup
	@if [ -f benchmarks/run_all.py ]; then $(PY) benchmarks/run_all.py; \
	else echo "make bench: benchmarks/run_all.py does not exist yet"; fi

clean:
	rm -rf build/interfaces $(STAMPS) .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) drl_control.egg-info
