# synergy_ros: `make test` and `make demo` set up everything themselves in .venv/.
#
#   make test                      # create/refresh .venv (+ .venv-jazzy), run the test suite
#   make demo                      # create/refresh .venv, run `synergy demo`
#   make demo TORCH_SPEC=torch==2.5.1 TORCH_INDEX=https://download.pytorch.org/whl/cu121
#
# On a machine with ROS 2 installed (ROS_DISTRO set, /opt/ros/$ROS_DISTRO present) the venv
# uses the system rclpy and messages (--system-site-packages); otherwise ROS 2 comes from
# PyPI wheels (cp311): Kilted in .venv, and Jazzy in a second venv, .venv-jazzy, in which
# `make test` runs the ROS-marked tests (-m ros) again. Each distribution's wheels are pinned
# (versions from `pip index versions`) so pip never mixes the two.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
# NVIDIA's typed TensorRT API for test/test_typecheck_tensorrt.py. --no-deps: the stubs wheel
# requires the real tensorrt-cu12-bindings, which are not installable here. 10.8 is the oldest
# published stubs release, the nearest to JetPack 6's TensorRT 10.3 (10.13 checks clean too).
TENSORRT_STUBS ?= tensorrt-stubs==10.8.0.43.1
JAZZY_VENV ?= .venv-jazzy
# Kilted (rclpy 9.1.x, messages 5.5.x) and Jazzy (rclpy 7.1.x, messages 5.3.x); each rclpy
# wheel pins its own rcl/rmw/rosidl dependencies.
ROS_PIP_WHEELS = ros-rclpy==9.1.2 ros-sensor-msgs==5.5.1 ros-std-msgs==5.5.1 \
                 ros-diagnostic-msgs==5.5.1 ros-builtin-interfaces==2.3.0 \
                 ros-geometry-msgs==5.5.1 ros-rmw-fastrtps-cpp==9.3.3
JAZZY_ROS_PIP_WHEELS = ros-rclpy==7.1.6 ros-sensor-msgs==5.3.6 ros-std-msgs==5.3.6 \
                       ros-diagnostic-msgs==5.3.6 ros-builtin-interfaces==2.0.3 \
                       ros-geometry-msgs==5.3.6 ros-rmw-fastrtps-cpp==8.4.3

SYSTEM_ROS := $(if $(and $(ROS_DISTRO),$(wildcard /opt/ros/$(ROS_DISTRO))),1,)
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.synergy-installed
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_STAMP := $(JAZZY_VENV)/.synergy-installed
# the Jazzy venv only where ROS 2 comes from PyPI (a system ROS install is one distribution)
TEST_STAMPS := $(STAMP) $(if $(SYSTEM_ROS),,$(JAZZY_STAMP))
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

# DDS stays on loopback for everything make starts (tests, demo, CI).
export ROS_AUTOMATIC_DISCOVERY_RANGE = LOCALHOST
# Humble's rmw predates ROS_AUTOMATIC_DISCOVERY_RANGE (Iron+) and reads ROS_LOCALHOST_ONLY; set
# it there only (Jazzy and later warn that it is deprecated)
ifeq ($(ROS_DISTRO),humble)
export ROS_LOCALHOST_ONLY = 1
endif
export ROS_DOMAIN_ID ?= 73

.PHONY: test test-jazzy demo venv clean lint bench help

help:
	@echo "make test   - set up .venv (+ .venv-jazzy) and run the test suite (ROS tests on Kilted and Jazzy)"
	@echo "make test-jazzy - only the ROS-marked tests in .venv-jazzy (ROS 2 Jazzy wheels)"
	@echo "make demo   - set up .venv and run the end-to-end demo (synergy demo)"
	@echo "make lint   - flake8 + pydocstyle only"
	@echo "make bench  - runtime benchmark of the bundled model (writes benchmarks/results/)"
	@echo "make clean  - remove .venv, build outputs and runs/"

venv: $(STAMP)

# One recipe for both venvs ($* = the venv folder): torch pin first, then that venv's ROS 2
# wheels (none with a system ROS install), then the package with its test extra.
%/.synergy-installed: setup.py setup.cfg package.xml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null || \
	  { echo "error: synergy_ros needs Python >= 3.10 (found: $$($(PYTHON) --version 2>&1)); install python3.11 or run 'make PYTHON=python3.11 ...'" >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "error: $(PYTHON) has no venv/ensurepip module; install it (Debian/Ubuntu: sudo apt install python3-venv)" >&2; exit 1; }
	@if [ -z "$(SYSTEM_ROS)" ]; then $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
	  { echo "error: without a ROS 2 install, rclpy comes from PyPI wheels that need Python 3.11 (found: $$($(PYTHON) --version 2>&1)); source /opt/ros/<distro>/setup.bash or use python3.11" >&2; exit 1; }; fi
	@if [ -d "$*" ] && [ ! -x "$*/bin/python" ]; then rm -rf "$*"; fi
	@if [ ! -x "$*/bin/python" ]; then \
	  echo "creating $* ($(if $(SYSTEM_ROS),with system ROS 2 $(ROS_DISTRO) site packages,ROS 2 $(if $(filter $(JAZZY_VENV),$*),Jazzy,Kilted) from PyPI wheels))"; \
	  $(PYTHON) -m venv $(if $(SYSTEM_ROS),--system-site-packages,) $*; fi
	$*/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$*/bin/python -m pip install -q --disable-pip-version-check $(TORCH_INDEX_ARGS) "$(TORCH_SPEC)"
	$(if $(SYSTEM_ROS),,$*/bin/python -m pip install -q --disable-pip-version-check \
	    $(if $(filter $(JAZZY_VENV),$*),$(JAZZY_ROS_PIP_WHEELS),$(ROS_PIP_WHEELS)))
	$*/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
	$*/bin/python -m pip install -q --disable-pip-version-check --no-deps "$(TENSORRT_STUBS)"
	@touch $@

# Everything on Kilted (or the system ROS), then the ROS-marked tests (node, lifecycle, node
# process, replay, demo, messages/codec) again on Jazzy.
test: $(TEST_STAMPS)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)
	$(if $(SYSTEM_ROS),,$(JAZZY_PY) -m pytest -m ros $(PYTEST_ARGS) || [ $$? -eq 5 ])

test-jazzy: $(JAZZY_STAMP)
	$(JAZZY_PY) -m pytest -m ros $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV_PY) -m pytest test/test_lint.py

demo: $(STAMP)
	$(VENV)/bin/synergy demo

bench: $(STAMP)
	$(VENV)/bin/synergy bench --model models/synergy_demo_r18.pt --threads 1,2 \
	    --output benchmarks/results/runtime_cpu

clean:
	rm -rf $(VENV) $(JAZZY_VENV) build install log runs *.egg-info
