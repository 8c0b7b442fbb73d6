# Two commands for a new user: `make demo` (sets up, then runs the live demo) and `make test`.
# Setup is incremental: every step below is a file that is remade only when its inputs change.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps
# Tests keep DDS on loopback and in a domain of their own, so parallel runs do not meet.
TEST_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 80) + 10 )))

.PHONY: setup test demo bench lint check-tools clean

setup: $(STAMPS)/project

check-tools:
	@PYTHON=$(PYTHON) tools/check_tools.sh

$(STAMPS)/requirements: requirements.txt tools/fix_ros_wheel_paths.py | check-tools
	@test -x $(VENV)/bin/pip || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); } || { rm -rf $(VENV); \
	  echo "make setup: $(PYTHON) -m venv failed (Debian: apt-get install python3.11-venv)" >&2; exit 1; }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) tools/fix_ros_wheel_paths.py $(VENV)
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/msgs: $(STAMPS)/requirements tools/build_msgs.sh prgcn_msgs/CMakeLists.txt prgcn_msgs/package.xml \
		$(wildcard prgcn_msgs/msg/*.msg)
	tools/build_msgs.sh $(VENV) build/prgcn_msgs
	@touch $@

$(STAMPS)/project: $(STAMPS)/msgs setup.py setup.cfg package.xml tools/register_ament.py $(wildcard launch/*.py config/*.yaml models/* rviz/*)
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) tools/register_ament.py $(VENV)
	@touch $@

test: setup
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$(TEST_DOMAIN_ID) $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) bench/ring_buffer.py
	$(PY) bench/model_speed.py
	$(PY) bench/refinement.py
	$(PY) bench/live.py
	$(PY) bench/schedule.py
	$(PY) bench/soak.py
	$(PY) bench/flood.py
	bench/gpu_check.sh
	$(PY) bench/unknown.py
	$(PY) bench/report.py

lint: setup
	$(VENV)/bin/ruff check prgcn_ros test bench tools launch

clean:
	rm -rf build $(VENV)

# The live demo: recognizer and player as two processes over DDS on loopback, held-out MSR
# Action3D clips, live table, live vs offline accuracy, latency, docs/demo.png (< 3 minutes).
demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)
