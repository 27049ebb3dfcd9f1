# Two commands for a new user on Debian/Ubuntu (see README.md):
#   make demo   installs what is missing, builds, runs the main demo
#   make test   installs what is missing, builds, runs every test and the format check
SWIFT ?= swift
CONFIG ?= release
# chromium and prometheus (its promtool) check the dashboard and the metrics in `make test`; cyclonedds-dev is the DDS
# library ROS 2 interoperability links (cyclonedds-tools' idlc for `make ros-idl`; iproute2's `ip netns` for a test).
APT_PACKAGES := cyclonedds-dev cyclonedds-tools iproute2 libeigen3-dev libserialport-dev libssl-dev libzstd-dev openssl \
  pkg-config python3 python3-venv tmux chromium prometheus
BIN := .build/$(CONFIG)/sinew

.PHONY: demo test deps build lint format clean pyenv install uninstall ros-idl

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Missing system packages:$$missing"; \
	       echo "Run as root:  apt-get update && apt-get install -y$$missing"; exit 1; fi; \
	fi
	@command -v $(SWIFT) >/dev/null 2>&1 || { echo "Swift 6.2 or later is needed (https://www.swift.org/install/linux/)"; exit 1; }
	@v=$$($(SWIFT) --version 2>/dev/null | sed -n 's/.*Swift version \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' | head -n 1); \
	set -- $$v; if [ -z "$$1" ] || [ "$$1" -lt 6 ] || { [ "$$1" -eq 6 ] && [ "$$2" -lt 2 ]; }; then \
	  echo "Swift 6.2 or later is needed (the code uses InlineArray); found: $$($(SWIFT) --version 2>&1 | head -n 1)"; \
	  echo "Install it from https://www.swift.org/install/linux/"; exit 1; fi

build: deps
	$(SWIFT) build -c $(CONFIG)

demo: build
	$(BIN) demo

# Third-party Python clients the tests run against Sinew (vendor SDKs, pymavlink), in a venv under .build.
PYENV := .build/pyenv
# Reinstalled whenever Tests/python/requirements.txt changes (a copy of the installed list is kept beside it).
pyenv:
	@if ! cmp -s Tests/python/requirements.txt $(PYENV)/requirements.installed || ! [ -x $(PYENV)/bin/python ]; then \
	  echo "Installing the Python clients used by the tests into $(PYENV)"; \
	  python3 -m venv $(PYENV) && $(PYENV)/bin/pip install --quiet --disable-pip-version-check -r Tests/python/requirements.txt \
	    && cp Tests/python/requirements.txt $(PYENV)/requirements.installed; \
	fi

# LeRobot (PyPI `lerobot`) for the compatibility suite (Tests/SinewCLITests/LeRobotTests.swift) in a venv of its own:
# LeRobot >= 0.5 needs Python >= 3.12, found here as LEROBOT_PYTHON, python3.13, python3.12, a pyenv 3.12+ or a new
# enough python3. LeRobot goes in without its dependencies (they pull PyTorch, torchvision and OpenCV, which its
# motor and robot modules do not use), then what those modules import (Tests/python/lerobot-requirements.txt); the
# suite puts a PyTorch stand-in on their path. Reinstalled when the version or the requirements change.
LEROBOT_VERSION := 0.6.1
LEROBOT_VENV := .build/lerobot-venv
LEROBOT_PYTHON ?=
define lerobot_venv
	@if ! cmp -s Tests/python/lerobot-requirements.txt $(1)/requirements.installed \
	    || ! grep -qx "lerobot==$(LEROBOT_VERSION)" $(1)/lerobot.installed 2>/dev/null || ! [ -x $(1)/bin/python ]; then \
	  python=""; \
	  for candidate in $(LEROBOT_PYTHON) python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null) python3; do \
	    if command -v $$candidate >/dev/null 2>&1 && $$candidate -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	      python=$$candidate; break; fi; \
	  done; \
	  if [ -z "$$python" ]; then \
	    echo "LeRobot >= 0.5 needs Python >= 3.12 with venv, and none was found. Install one (Ubuntu 24.04: apt-get install"; \
	    echo "python3-venv; Ubuntu 22.04 / Debian 12: apt-get install python3.12-venv from deadsnakes, or pyenv install 3.12)"; \
	    echo "or point LEROBOT_PYTHON at it: make test LEROBOT_PYTHON=/path/to/python3.12"; exit 1; fi; \
	  echo "Installing LeRobot $(LEROBOT_VERSION) (without PyTorch) into $(1) with $$python"; \
	  rm -rf $(1) && $$python -m venv $(1) \
	    && $(1)/bin/pip install --quiet --disable-pip-version-check --no-deps lerobot==$(LEROBOT_VERSION) \
	    && $(1)/bin/pip install --quiet --disable-pip-version-check --no-warn-conflicts -r Tests/python/lerobot-requirements.txt \
	    && cp Tests/python/lerobot-requirements.txt $(1)/requirements.installed \
	    && echo "lerobot==$(LEROBOT_VERSION)" > $(1)/lerobot.installed; \
	fi
endef

.PHONY: lerobot-env lerobot-torch-check
lerobot-env:
	$(call lerobot_venv,$(LEROBOT_VENV))

# The same suite with the real PyTorch instead of the stand-in, in a venv of its own; not part of `make test`.
# PyTorch comes from LEROBOT_TORCH_INDEX, by default its CPU-only index (about 200 MB); LEROBOT_TORCH_INDEX= takes
# PyPI's build instead, which brings its CUDA libraries (several GB).
LEROBOT_TORCH_VENV := .build/lerobot-torch-venv
LEROBOT_TORCH := torch==2.11.0
LEROBOT_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
lerobot-torch-check: deps
	$(call lerobot_venv,$(LEROBOT_TORCH_VENV))
	@if ! grep -qx "$(LEROBOT_TORCH)" $(LEROBOT_TORCH_VENV)/torch.installed 2>/dev/null; then \
	  echo "Installing $(LEROBOT_TORCH) into $(LEROBOT_TORCH_VENV) from $(or $(LEROBOT_TORCH_INDEX),PyPI)"; \
	  $(LEROBOT_TORCH_VENV)/bin/pip install --quiet --disable-pip-version-check --no-warn-conflicts \
	    $(if $(LEROBOT_TORCH_INDEX),--index-url $(LEROBOT_TORCH_INDEX)) $(LEROBOT_TORCH) \
	    && echo "$(LEROBOT_TORCH)" > $(LEROBOT_TORCH_VENV)/torch.installed; \
	fi
	$(LEROBOT_TORCH_VENV)/bin/python -c 'import torch; print("PyTorch", torch.__version__)'
	$(SWIFT) build -c $(CONFIG) --build-tests
	SINEW_LEROBOT_PYTHON=$(CURDIR)/$(LEROBOT_TORCH_VENV)/bin/python SINEW_LEROBOT_REAL_TORCH=1 \
	  $(SWIFT) test -c $(CONFIG) --skip-build --filter LeRobotTests

# LeRobot's rates and its connects under lost replies on the virtual bus, beside Sinew's (Benchmarks/lerobot/measure.py;
# the figures in README.md's "Use Sinew's simulator with LeRobot"). About 4 minutes.
.PHONY: bench-lerobot
bench-lerobot: deps lerobot-env
	$(SWIFT) build -c release --product sinew
	python3 Benchmarks/lerobot/measure.py

TEST_ENV = SINEW_PYTHON=$(CURDIR)/$(PYENV)/bin/python SINEW_LEROBOT_PYTHON=$(CURDIR)/$(LEROBOT_VENV)/bin/python
# Six groups run after the rest, one at a time. The suite's real-time runs hold SCHED_FIFO threads that busy-poll:
# beside them on two cores a thread of ordinary priority can wait seconds. MultiBusTests (real time, I/O threads
# pinned to the cores) would make the other tests' loops late; the vendors' SDKs (RegisterWalkTests, and LeRobot's
# in LeRobotTests) wait a few milliseconds for a status packet; the telemetry servers' tests (SinewTelemetryTests)
# time out when SwiftNIO's event loop does not run; the ROS 2 tests (ROSTests, SinewROSTests) hold a loop's rate and
# an e-stop's tick against DDS threads of ordinary priority; the real-arm recording sessions (ArmRecordTests) hold
# a FIFO loop against two virtual servers of ordinary priority for up to a minute each.
ALONE_SUITES := MultiBusTests RegisterWalkTests LeRobotTests SinewTelemetryTests ROSTests ArmRecordTests
space := $(subst ,, )
test: deps pyenv lerobot-env
	$(SWIFT) build -c $(CONFIG) --build-tests
	$(TEST_ENV) $(SWIFT) test -c $(CONFIG) --skip-build --skip '$(subst $(space),|,$(ALONE_SUITES))'
	for suite in $(ALONE_SUITES); do $(TEST_ENV) $(SWIFT) test -c $(CONFIG) --skip-build --filter $$suite || exit 1; done
	$(MAKE) --no-print-directory example
	$(MAKE) --no-print-directory data-loop
	$(MAKE) --no-print-directory lint

# The example of a user's own policy (Examples/CustomPolicy, docs/policies.md): a package of its own that depends on
# this checkout's library products as an outside package would, built in debug (the quickest to build; it has its
# own build folder, so nothing of the release build is reused) and run: it exits 1 when its runs misbehave.
EXAMPLE_BUILD := .build/example
.PHONY: example
example: deps
	$(SWIFT) build --package-path Examples/CustomPolicy --scratch-path $(EXAMPLE_BUILD)
	$(EXAMPLE_BUILD)/debug/CustomPolicy

# The data loop closed on the simulated SO-101 (Examples/DataLoop/data_loop.py, about 20 s): 50 demonstrations of
# reach recorded into a LeRobotDataset, an MLP trained on them by behaviour cloning (numpy), and `sinew sim eval` of
# it beside the scripted expert on 100 held-out seeds, without and with domain randomisation; fails below 90 %.
.PHONY: data-loop
data-loop: pyenv
	$(SWIFT) build -c $(CONFIG) --product sinew
	$(PYENV)/bin/python Examples/DataLoop/data_loop.py --sinew $(BIN)

lint:
	$(SWIFT) format lint --strict --recursive --parallel Package.swift Sources Tests Benchmarks Fuzz Examples

format:
	$(SWIFT) format format --in-place --recursive --parallel Package.swift Sources Tests Benchmarks Fuzz Examples

# `make install PREFIX=/opt/sinew` (default /usr/local; DESTDIR for staging): the sinew executable, built with
# the Swift runtime linked in (it runs on a controller without a Swift toolchain), in PREFIX/bin, and its data
# (servo tables, shipped robots, udev rules) in PREFIX/share/sinew/Hardware, where the executable looks first, with
# the dataset writer `sinew record` calls in PREFIX/share/sinew/python.
PREFIX ?= /usr/local
INSTALL_BUILD := .build-install
install: deps
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path $(INSTALL_BUILD) --product sinew
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/share/sinew"
	install -s -m 755 $(INSTALL_BUILD)/release/sinew "$(DESTDIR)$(PREFIX)/bin/sinew"
	rm -rf "$(DESTDIR)$(PREFIX)/share/sinew/Hardware" "$(DESTDIR)$(PREFIX)/share/sinew/python"
	cp -R Hardware "$(DESTDIR)$(PREFIX)/share/sinew/Hardware"
	install -d "$(DESTDIR)$(PREFIX)/share/sinew/python/sinew_dataset"
	install -m 644 python/sinew_dataset/*.py "$(DESTDIR)$(PREFIX)/share/sinew/python/sinew_dataset"
	@echo "Installed $(DESTDIR)$(PREFIX)/bin/sinew and its data in $(DESTDIR)$(PREFIX)/share/sinew/Hardware"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/sinew"
	rm -rf "$(DESTDIR)$(PREFIX)/share/sinew"

clean:
	rm -rf .build $(INSTALL_BUILD)

# Pinocchio (PyPI `pin`) in a venv under .build, shared by the two targets below (Benchmarks/pinocchio/build.sh).
.PHONY: pinocchio-venv reference-kinematics bench-pinocchio
PINOCCHIO_VENV := .build/pinocchio-venv
pinocchio-venv:
	@sh Benchmarks/pinocchio/build.sh --venv

# Regenerates Tests/Fixtures/kinematics/*.pinocchio.json (see its README.md; generate_reference.py --check compares).
reference-kinematics: pinocchio-venv
	$(PINOCCHIO_VENV)/bin/python Tests/Fixtures/kinematics/generate_reference.py

# Sinew's kinematics core and Pinocchio side by side on this machine (Benchmarks/kinematics-vs-pinocchio.sh).
bench-pinocchio: deps pinocchio-venv
	sh Benchmarks/kinematics-vs-pinocchio.sh

# libFuzzer (the Swift toolchain's) on the parsers of outside input: robot.yaml, URDF, e-stop socket messages,
# safetensors model files (the mlp policy), joint motion CSV files (robot.yaml's simulation.motion), MCAP recordings,
# task.yaml files and --range items, policy servers' msgpack frames, ROS 2 samples from DDS.
# `make fuzz FUZZ_SECONDS=600`; seeds in Fuzz/corpus, findings kept in .build-fuzz/corpus, crashes in .build-fuzz/.
.PHONY: fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	$(SWIFT) build -c debug --scratch-path .build-fuzz --product sinew-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	mkdir -p .build-fuzz/corpus
	cd .build-fuzz && ./debug/sinew-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -rss_limit_mb=4096 corpus ../Fuzz/corpus

# The mlp policy's inference beside numpy and onnxruntime on the same network (Benchmarks/mlp/README.md), with
# those in a venv under .build, reinstalled when Benchmarks/mlp/requirements.txt changes. numpy runs without the
# OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides some machines set for old OpenBLAS builds (they slow a current one).
.PHONY: bench-mlp
BENCH_VENV := .build/bench-venv
bench-mlp: deps
	@if ! cmp -s Benchmarks/mlp/requirements.txt $(BENCH_VENV)/requirements.installed || ! [ -x $(BENCH_VENV)/bin/python ]; then \
	  echo "Installing numpy, safetensors, onnx and onnxruntime into $(BENCH_VENV)"; \
	  python3 -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check \
	    -r Benchmarks/mlp/requirements.txt && cp Benchmarks/mlp/requirements.txt $(BENCH_VENV)/requirements.installed; \
	fi
	$(SWIFT) build -c release --product sinew-bench-mlp
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
	  $(BENCH_VENV)/bin/python Benchmarks/mlp/compare.py --sinew .build/release/sinew-bench-mlp

# The bridge's modes on the synthetic chunks beside sample-and-hold (half a second of joint 0, where the chunks'
# disagreement shows), plotted into docs/images/bridge-modes.png (shown in docs/policies.md) by
# Benchmarks/plot_bridge.py from `sinew bench policy --bridge-csv`; matplotlib in a venv under .build, reinstalled
# when Benchmarks/plot-requirements.txt changes.
.PHONY: plot-bridge
PLOT_VENV := .build/plot-venv
plot-bridge: deps
	@if ! cmp -s Benchmarks/plot-requirements.txt $(PLOT_VENV)/requirements.installed || ! [ -x $(PLOT_VENV)/bin/python ]; then \
	  echo "Installing matplotlib into $(PLOT_VENV)"; \
	  python3 -m venv $(PLOT_VENV) && $(PLOT_VENV)/bin/pip install --quiet --disable-pip-version-check \
	    -r Benchmarks/plot-requirements.txt && cp Benchmarks/plot-requirements.txt $(PLOT_VENV)/requirements.installed; \
	fi
	$(SWIFT) build -c $(CONFIG) --product sinew
	mkdir -p docs/images
	$(BIN) bench policy --bridge-csv .build/bridge-modes.csv
	$(PLOT_VENV)/bin/python Benchmarks/plot_bridge.py .build/bridge-modes.csv docs/images/bridge-modes.png --from 3.7 --to 4.2

# A Python ≥ 3.12 (LeRobot ≥ 0.5 needs one): PYTHON312=… overrides; else python3.13 or python3.12 on PATH, or one
# pyenv installed. Debian 12 ships 3.11: `pyenv install 3.12` (https://github.com/pyenv/pyenv), or Debian 13 /
# Ubuntu 24.04, whose python3 is new enough.
PYTHON312 ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
  && { command -v $$p; break; }; done)
.PHONY: python312
python312:
	@[ -n "$(PYTHON312)" ] || { echo "A Python 3.12 or later is needed here (LeRobot requires it) and none was found."; \
	  echo "Install one (e.g. pyenv install 3.12, or Debian 13 / Ubuntu 24.04), or give PYTHON312=/path/to/python3.12."; \
	  exit 1; }

# Remote policies' round trip: Sinew's client and server beside LeRobot's async-inference transport, same payload,
# same run (Benchmarks/remote_policy; LeRobot installed without its dependencies, no torch needed).
BENCH_REMOTE_VENV := .build/bench-remote-venv
.PHONY: bench-remote-policy
bench-remote-policy: build python312
	@if ! cmp -s Benchmarks/remote_policy/requirements.txt $(BENCH_REMOTE_VENV)/requirements.installed; then \
	  echo "Installing the benchmark's Python environment into $(BENCH_REMOTE_VENV) (with $(PYTHON312))"; \
	  $(PYTHON312) -m venv $(BENCH_REMOTE_VENV) \
	  && grep -v '^lerobot' Benchmarks/remote_policy/requirements.txt > $(BENCH_REMOTE_VENV)/base.txt \
	  && $(BENCH_REMOTE_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(BENCH_REMOTE_VENV)/base.txt \
	  && $(BENCH_REMOTE_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
	       $$(grep '^lerobot' Benchmarks/remote_policy/requirements.txt) \
	  && cp Benchmarks/remote_policy/requirements.txt $(BENCH_REMOTE_VENV)/requirements.installed; \
	fi
	$(BENCH_REMOTE_VENV)/bin/pip install --quiet --disable-pip-version-check ./python
	$(BIN) bench remote-policy --python $(BENCH_REMOTE_VENV)/bin/python \
	  --lerobot-script Benchmarks/remote_policy/lerobot_transport.py

# LeRobot's ACT and diffusion policies (random weights, CPU torch from PyPI: a large download) served by
# sinew_policy_server and driving the simulated SO-101 for 20 s each (Benchmarks/remote_policy/lerobot_policies_check.py;
# docs/remote-policies.md has the figures).
LEROBOT_POLICY_VENV := .build/lerobot-policy-venv
.PHONY: check-lerobot-policies
check-lerobot-policies: build python312
	@[ -x $(LEROBOT_POLICY_VENV)/bin/python ] || { echo "Installing lerobot and torch into $(LEROBOT_POLICY_VENV)"; \
	  $(PYTHON312) -m venv $(LEROBOT_POLICY_VENV) && $(LEROBOT_POLICY_VENV)/bin/pip install --quiet \
	    --disable-pip-version-check 'lerobot[diffusion]==0.6.1' websockets==17.4 msgpack==1.2.4; }
	$(LEROBOT_POLICY_VENV)/bin/python Benchmarks/remote_policy/lerobot_policies_check.py

# The flight recorder under load (release build): a 12-joint robot at 1 kHz for 60 s, the record stage with and
# without the MCAP recorder, snapshots dropped (goal: none) — docs/recording.md.
.PHONY: bench-recording
bench-recording: build
	$(BIN) bench recording --duration 60 --rate 1000 --servos 12

# A dataset `sinew record` writes, loaded by LeRobot's own LeRobotDataset (lerobot 0.6.1; Python ≥ 3.12) and iterated
# frame by frame (Benchmarks/lerobot_dataset/load_with_lerobot.py): 10 demonstrations of reach on the simulated
# SO-101. Outside `make test`: the first run downloads LeRobot and torch from PyPI (several GB with torch's CUDA
# libraries; PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu fetches a CPU-only torch instead).
LEROBOT_DATASET_VENV := .build/lerobot-dataset-venv
.PHONY: check-lerobot-dataset
check-lerobot-dataset: build pyenv python312
	@if ! cmp -s Benchmarks/lerobot_dataset/requirements.txt $(LEROBOT_DATASET_VENV)/requirements.installed; then \
	  echo "Installing lerobot[dataset] and torch into $(LEROBOT_DATASET_VENV) (with $(PYTHON312))"; \
	  $(PYTHON312) -m venv $(LEROBOT_DATASET_VENV) && $(LEROBOT_DATASET_VENV)/bin/pip install --quiet \
	    --disable-pip-version-check -r Benchmarks/lerobot_dataset/requirements.txt \
	  && cp Benchmarks/lerobot_dataset/requirements.txt $(LEROBOT_DATASET_VENV)/requirements.installed; \
	fi
	rm -rf .build/lerobot-dataset-check
	SINEW_PYTHON=$(CURDIR)/$(PYENV)/bin/python $(BIN) record Hardware/robots/so101/robot.yaml \
	  --task Hardware/robots/so101/tasks/reach.yaml --episodes 10 --seed 1 --dataset .build/lerobot-dataset-check
	HF_HUB_OFFLINE=1 HF_HOME=$(CURDIR)/.build/lerobot-dataset-hf $(LEROBOT_DATASET_VENV)/bin/python \
	  Benchmarks/lerobot_dataset/load_with_lerobot.py .build/lerobot-dataset-check

# Simulated seconds per wall second, the whole stack (servo firmware, bus bytes, physics, loop, policy) per core and
# on 2 processes, beside MuJoCo (PyPI mujoco) stepping the same arm through mujoco.rollout, interleaved in one run
# (`sinew bench sim`; MuJoCo's side in Benchmarks/sim/mujoco_rollout.py). mujoco and numpy in a venv under .build,
# reinstalled when Benchmarks/sim/requirements.txt changes.
BENCH_SIM_VENV := .build/bench-sim-venv
.PHONY: bench-sim
bench-sim: build
	@if ! cmp -s Benchmarks/sim/requirements.txt $(BENCH_SIM_VENV)/requirements.installed || ! [ -x $(BENCH_SIM_VENV)/bin/python ]; then \
	  echo "Installing mujoco and numpy into $(BENCH_SIM_VENV)"; \
	  python3 -m venv $(BENCH_SIM_VENV) && $(BENCH_SIM_VENV)/bin/pip install --quiet --disable-pip-version-check \
	    -r Benchmarks/sim/requirements.txt && cp Benchmarks/sim/requirements.txt $(BENCH_SIM_VENV)/requirements.installed; \
	fi
	$(BIN) bench sim --python $(BENCH_SIM_VENV)/bin/python

# What watching a robot costs its loop (docs in README.md, "Seeing the robot"): one `sinew run` with the dashboard and
# the metrics on, alternating 10 s without a client and 10 s with a headless Chromium on the dashboard and /metrics
# scraped every second; the wake-up lateness p99 of the two kinds of window, from the run's CSV recording.
.PHONY: bench-telemetry
bench-telemetry: build pyenv
	$(PYENV)/bin/python Benchmarks/telemetry/cost.py --sinew $(BIN) --robot Hardware/robots/so101/robot.yaml \
	  --windows 12 --window-s 10

# Sinew on ROS 2's DDS wire (release build, loopback only): tick state -> a subscriber in another process and
# trajectory point -> the tick that uses it (p50/p99), and four robots at 500 Hz with joint_states at 500 Hz each:
# wake-up lateness p99 with and without DDS, rounds alternating in one run — docs/ros2.md.
.PHONY: bench-ros
bench-ros: build pyenv
	$(PYENV)/bin/python Benchmarks/ros/bench_ros.py --sinew $(BIN) --python $(PYENV)/bin/python

# The ROS 2 message types Sinew speaks on DDS (Sources/CSinewDDS/idl/ros_messages.idl, written from the ROS 2 message
# definitions), compiled to C by Cyclone DDS's idlc (cyclonedds-tools). The generated files are committed, so a build
# never needs idlc; run this after changing the IDL (-t: no XTypes type information, matching by type name as ROS 2
# does; -x final: @final, plain XCDR1).
ros-idl: deps
	cd Sources/CSinewDDS/idl && idlc -t -x final -o .. ros_messages.idl
	mv Sources/CSinewDDS/ros_messages.h Sources/CSinewDDS/include/ros_messages.h
	sed -i -e 's|Source: .*/Sources/CSinewDDS/|Source: Sources/CSinewDDS/|' -e 's|File name: \.\./|File name: |' \
	  Sources/CSinewDDS/ros_messages.c Sources/CSinewDDS/include/ros_messages.h
