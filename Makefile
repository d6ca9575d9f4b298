# synergy_ros: `make test` and `make demo` set up everything themselves in .venv/.
#
#   make test                      # create/refresh .venv, run the whole test suite
#   make demo                      # create/refresh .venv, run `synergy demo`
#   make demo TORCH_SPEC=torch==2.5.1 TORCH_INDEX=https://download.pytorch.org/whl/cu121
#
# On a machine with ROS 2 installed (ROS_DISTRO set, /opt/ros/$ROS_DISTRO present) the venv
# uses the system rclpy and messages (--system-site-packages); otherwise ROS 2 comes from
# PyPI wheels (cp311).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
# NVIDIA's typed TensorRT API for test/test_typecheck_tensorrt.py. --no-deps: the stubs wheel
# requires the real tensorrt-cu12-bindings, which are not installable here. 10.8 is the oldest
# published stubs release, the nearest to JetPack 6's TensorRT 10.3 (10.13 checks clean too).
TENSORRT_STUBS ?= tensorrt-stubs==10.8.0.43.1
ROS_PIP_WHEELS = ros-rclpy ros-sensor-msgs ros-std-msgs ros-diagnostic-msgs \
                 ros-builtin-interfaces ros-geometry-msgs ros-rmw-fastrtps-cpp

SYSTEM_ROS := $(if $(and $(ROS_DISTRO),$(wildcard /opt/ros/$(ROS_DISTRO))),1,)
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.synergy-installed
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

# DDS stays on loopback for everything make starts (tests, demo, CI).
export ROS_AUTOMATIC_DISCOVERY_RANGE = LOCALHOST
export ROS_DOMAIN_ID ?= 73

.PHONY: test demo venv clean lint bench help

help:
	@echo "make test   - set up .venv and run the test suite"
	@echo "make demo   - set up .venv and run the end-to-end demo (synergy demo)"
	@echo "make lint   - flake8 + pydocstyle only"
	@echo "make bench  - runtime benchmark of the bundled model (writes benchmarks/results/)"
	@echo "make clean  - remove .venv, build outputs and runs/"

venv: $(STAMP)

$(STAMP): setup.py setup.cfg package.xml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null || \
	  { echo "error: synergy_ros needs Python >= 3.10 (found: $$($(PYTHON) --version 2>&1)); install python3.11 or run 'make PYTHON=python3.11 ...'" >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "error: $(PYTHON) has no venv/ensurepip module; install it (Debian/Ubuntu: sudo apt install python3-venv)" >&2; exit 1; }
	@if [ -z "$(SYSTEM_ROS)" ]; then $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
	  { echo "error: without a ROS 2 install, rclpy comes from PyPI wheels that need Python 3.11 (found: $$($(PYTHON) --version 2>&1)); source /opt/ros/<distro>/setup.bash or use python3.11" >&2; exit 1; }; fi
	@if [ -d "$(VENV)" ] && [ ! -x "$(VENV_PY)" ]; then rm -rf "$(VENV)"; fi
	@if [ ! -x "$(VENV_PY)" ]; then \
	  echo "creating $(VENV) ($(if $(SYSTEM_ROS),with system ROS 2 $(ROS_DISTRO) site packages,ROS 2 from PyPI wheels))"; \
	  $(PYTHON) -m venv $(if $(SYSTEM_ROS),--system-site-packages,) $(VENV); fi
	$(VENV_PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV_PY) -m pip install -q --disable-pip-version-check $(TORCH_INDEX_ARGS) "$(TORCH_SPEC)"
	$(if $(SYSTEM_ROS),,$(VENV_PY) -m pip install -q --disable-pip-version-check $(ROS_PIP_WHEELS))
	$(VENV_PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	$(VENV_PY) -m pip install -q --disable-pip-version-check --no-deps "$(TENSORRT_STUBS)"
	@touch $(STAMP)

test: $(STAMP)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV_PY) -m pytest test/test_lint.py

demo: $(STAMP)
	$(VENV)/bin/synergy demo

bench: $(STAMP)
	$(VENV)/bin/synergy bench --model models/synergy_demo_r18.pt --threads 1,2 \
	    --output benchmarks/results/runtime_cpu

clean:
	rm -rf $(VENV) build install log runs *.egg-info
