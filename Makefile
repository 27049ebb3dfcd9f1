# Two commands for a new user on Debian/Ubuntu (see README.md):
#   make demo   installs what is missing, builds, runs the main demo
#   make test   installs what is missing, builds, runs every test and the format check
SWIFT ?= swift
CONFIG ?= release
APT_PACKAGES := libeigen3-dev libserialport-dev pkg-config python3 python3-venv
BIN := .build/$(CONFIG)/sinew

.PHONY: demo test deps build lint format clean pyenv

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
	@command -v $(SWIFT) >/dev/null 2>&1 || { echo "Swift 6.1 or later is needed (https://www.swift.org/install/linux/)"; exit 1; }

build: deps
	$(SWIFT) build -c $(CONFIG)

demo: build
	$(BIN) demo

# Third-party Python clients the tests run against Sinew (vendor SDKs, pymavlink), in a venv under .build.
PYENV := .build/pyenv
pyenv:
	@if ! $(PYENV)/bin/python -c "import dynamixel_sdk, scservo_sdk, pymavlink" 2>/dev/null; then \
	  echo "Installing the Python clients used by the tests into $(PYENV)"; \
	  python3 -m venv $(PYENV) && $(PYENV)/bin/pip install --quiet --disable-pip-version-check -r Tests/python/requirements.txt; \
	fi

test: deps pyenv
	$(SWIFT) build -c $(CONFIG) --build-tests
	SINEW_PYTHON=$(CURDIR)/$(PYENV)/bin/python $(SWIFT) test -c $(CONFIG) --skip-build
	$(MAKE) --no-print-directory lint

lint:
	$(SWIFT) format lint --strict --recursive --parallel Package.swift Sources Tests Benchmarks

format:
	$(SWIFT) format format --in-place --recursive --parallel Package.swift Sources Tests Benchmarks

clean:
	rm -rf .build
