# P1/HAN dongle: one entry point for setup, tests, the host run and the device.
# Every target sets up what it needs itself (on a fresh Debian machine too);
# stamp files make a second run fast.  `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
VBIN := $(VENV)/bin

# Device-side pins (the device runs MicroPython 1.29).
STUBS := micropython-esp32-stubs==1.29.0.post1 micropython-stdlib-stubs==1.29.0.post2
STUBS_TAG := 1.29.0.post1
ESPTOOL := esptool==5.6.0
MPREMOTE := mpremote==1.29.0
APT_PKGS := mosquitto mosquitto-clients chromium prometheus
# the 32-bit C library for Debian's i386 MicroPython (tools/mp32.py: the memory budget in the ESP32's word size)
APT_PKGS += $(if $(filter x86_64,$(shell uname -m)),libc6-i386)

VENV_STAMP := $(VENV)/.p1-requirements.stamp
NODE_STAMP := tools/mp/node_modules/.p1-npm.stamp
# Home Assistant for the discovery test (host_tests/test_home_assistant.py), in a
# venv of its own (its pins clash with ours): the oldest release we support.
HA_VERSION := 2024.3.3
HA_VENV := .venv-ha
# HomeWizard's client as that release's HomeWizard integration pins it (test_homewizard.py).
HWE_VERSION := 4.3.1
HA_STAMP := $(HA_VENV)/.p1-ha-$(HA_VERSION)-hwe-$(HWE_VERSION).stamp
TYPINGS_STAMP := typings/.p1-stubs-$(STUBS_TAG).stamp
MP32_STAMP := $(VENV)/mp32/.p1-mp32

# `make run` options, forwarded only when set: make run INTERVAL=1 SOURCE=sim MQTT=127.0.0.1:1883
# MP=1 runs the firmware under MicroPython's Unix port (HEAP=160K by default).
RUNARGS := $(if $(INTERVAL),--interval $(INTERVAL)) $(if $(SOURCE),--source $(SOURCE)) \
	$(if $(MQTT),--mqtt $(MQTT)) $(if $(HTTP_PORT),--port $(HTTP_PORT)) $(if $(MP),--mp) \
	$(if $(HEAP),--heap $(HEAP)) $(ARGS)

# The device build of one board (boards/$(BOARD).json): its chip picks the
# native code's architecture (xtensawin, rv32imc); build/$(BOARD)/ holds it.
BOARD ?= esp32-devkit
BOARD_BUILD := build/$(BOARD)
ROMFS_IMAGE := build/$(BOARD).romfs
# make bundle: build/$(BOARD)-$(VERSION).tar (tools/bundle.py); make deploy copies its content.
# BOARD=host: the host board's code for `p1tool.py run --ota` (ARCH=py sources, x64 for --mp)
VERSION = $(shell sed -n 's/^VERSION = "\(.*\)"/\1/p' firmware/version.py)
BUNDLE = build/$(BOARD)-$(VERSION).tar

# Flashing: make flash FIRMWARE=ESP32_GENERIC-v1.29.0.bin [PORT=/dev/ttyUSB0] [CHIP=esp32]
CHIP ?= esp32
BAUD ?= 460800
DEVICE_PORT = $(or $(PORT),/dev/ttyUSB0)
# MicroPython images start at 0x1000 on ESP32 and ESP32-S2, at 0x0 on the others.
FLASH_ADDR ?= $(if $(filter esp32 esp32s2,$(CHIP)),0x1000,0x0)

.PHONY: help setup apt test lint typecheck pytest bench soak run build bundle flash deploy deploy-romfs deploy-frozen console clean distclean

help:
	@echo "make run        run the dongle on this machine against a simulated meter"
	@echo "                (INTERVAL=, SOURCE=, MQTT=, HTTP_PORT= and ARGS= are passed on;"
	@echo "                MP=1 runs it under MicroPython's Unix port, HEAP= its heap)"
	@echo "make test       ruff, pyright (firmware vs. ESP32 stubs), pytest host_tests"
	@echo "make bench      tools/bench.py"
	@echo "make soak       tools/soak.py: 100 000 telegrams through the firmware under CPython"
	@echo "                and MicroPython with every client and a broker outage (SOAK_N= fewer)"
	@echo "make build      compile the firmware to .mpy in build/BOARD/ for one board"
	@echo "                (BOARD=esp32-devkit by default; see boards/*.json)"
	@echo "make flash      FIRMWARE=micropython.bin [PORT=/dev/ttyUSB0] [CHIP=esp32]"
	@echo "make bundle     build/BOARD-VERSION.tar: what goes on the board, a manifest with"
	@echo "                SHA-256s; prints its size against the board's flash"
	@echo "make deploy     copy the bundle's files to the board [PORT=/dev/ttyUSB0], reset"
	@echo "make console    the board's REPL (mpremote) [PORT=/dev/ttyUSB0]; Ctrl-] leaves"
	@echo "make deploy-romfs  the code as a ROMFS image (runs from flash, saves RAM): needs a"
	@echo "                MicroPython built with ROMFS, refuses a stock image (docs/DEVICE.md)"
	@echo "make deploy-frozen  the files a MicroPython with the firmware frozen in still needs"
	@echo "make setup      apt packages, .venv, node runner, device stubs (all targets do this)"
	@echo "make clean      remove build output and caches; distclean also .venv etc."

# ---------------------------------------------------------------- setup
setup: apt $(VENV_STAMP) $(NODE_STAMP) $(TYPINGS_STAMP) $(MP32_STAMP)

# Debian packages, installed only when missing (node/npm and python3-venv only
# when the machine lacks them).  Needs root or sudo only if something is missing.
apt:
	@pkgs="$(APT_PKGS)"; \
	command -v node >/dev/null || pkgs="$$pkgs nodejs"; \
	command -v npm >/dev/null || pkgs="$$pkgs npm"; \
	test -x $(VPY) || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || pkgs="$$pkgs python3-venv"; \
	missing=""; \
	for p in $$pkgs; do \
	  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "setup: not root; Debian packages already present, apt skipped"; fi; \
	  exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null; then sudo="sudo"; \
	else echo "make setup: missing Debian packages:$$missing"; \
	     echo "make setup: run as root (or install sudo) so that it can apt-get install them"; \
	     exit 1; fi; \
	echo "apt-get install:$$missing"; \
	$$sudo apt-get update -qq; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

$(VENV_STAMP): requirements-dev.txt | apt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(NODE_STAMP): tools/mp/package.json tools/mp/package-lock.json | apt
	cd tools/mp && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's 32-bit MicroPython Unix port (.debs checked against the archive's signature,
# unpacked into .venv/mp32, run by .venv/bin/micropython32): the budget test's heap is then
# the ESP32's own 100 KB, not a 64-bit equivalent (docs/MEMORY.md).
$(MP32_STAMP): tools/mp32.py | $(VENV_STAMP) apt
	$(VPY) tools/mp32.py

# Installed with the release's own pins: homeassistant/package_constraints.txt,
# which ships inside its wheel (the file HA's own installs use); without them pip
# backtracks for ever on HA's dependencies. Only the MQTT integration's
# requirement (paho-mqtt, pinned there too) and the HomeWizard integration's
# (python-homewizard-energy) are added.
$(HA_STAMP): | apt
	rm -rf $(HA_VENV)
	$(PYTHON) -m venv $(HA_VENV)
	$(HA_VENV)/bin/pip download --disable-pip-version-check -q --no-deps -d $(HA_VENV)/dist homeassistant==$(HA_VERSION)
	$(HA_VENV)/bin/python -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("homeassistant/package_constraints.txt"))' \
	  $(HA_VENV)/dist/homeassistant-$(HA_VERSION)-py3-none-any.whl > $(HA_VENV)/constraints.txt
	$(HA_VENV)/bin/pip install --disable-pip-version-check -q -c $(HA_VENV)/constraints.txt \
	  $(HA_VENV)/dist/homeassistant-$(HA_VERSION)-py3-none-any.whl paho-mqtt python-homewizard-energy==$(HWE_VERSION)
	touch $@

# Device API stubs go into typings/, not into .venv (they would shadow CPython's).
$(TYPINGS_STAMP): $(VENV_STAMP)
	rm -rf typings
	$(VPY) -m pip install --disable-pip-version-check -q --no-user --target typings $(STUBS)
	touch $@

# ---------------------------------------------------------------- test
test: setup $(HA_STAMP)
	@rc=0; \
	echo "== ruff check ."; $(VBIN)/ruff check . || rc=1; \
	echo "== pyright (firmware/ against ESP32 MicroPython stubs)"; $(VBIN)/pyright -p pyrightconfig.json || rc=1; \
	echo "== pytest host_tests"; $(VBIN)/pytest host_tests $(PYTEST_ARGS) || rc=1; \
	exit $$rc

lint: $(VENV_STAMP)
	$(VBIN)/ruff check .

typecheck: $(TYPINGS_STAMP)
	$(VBIN)/pyright -p pyrightconfig.json

pytest: setup $(HA_STAMP)
	$(VBIN)/pytest host_tests $(PYTEST_ARGS)

# ---------------------------------------------------------------- run / bench
bench: setup
	$(VPY) tools/bench.py

# Not a test: bounded (~35 minutes at 100 000 telegrams: CPython, MicroPython 152K and 129K), prints figures.
soak: setup
	$(VPY) tools/soak.py $(if $(SOAK_N),--n $(SOAK_N))

# @: the command line can hold an MQTT password (MQTT=mqtt://user:secret@...)
run: setup
	@echo "$(VPY) tools/p1tool.py run ..."
	@$(VPY) tools/p1tool.py run $(strip $(RUNARGS))

# ---------------------------------------------------------------- device
build: $(VENV_STAMP)
	$(VPY) tools/build_device.py --board $(BOARD) --out $(BOARD_BUILD)

flash:
	@if [ -z "$(FIRMWARE)" ]; then \
	  echo "make flash: FIRMWARE is not set."; \
	  echo "  Download the MicroPython image for your board from micropython.org/download"; \
	  echo "  (e.g. ESP32_GENERIC-<date>-v1.29.0.bin), then:"; \
	  echo "  make flash FIRMWARE=path/to/image.bin [PORT=$(DEVICE_PORT)] [CHIP=esp32|esp32s2|esp32s3|esp32c3]"; \
	  exit 2; fi
	@test -f "$(FIRMWARE)" || { echo "make flash: FIRMWARE=$(FIRMWARE): no such file"; exit 2; }
	@$(MAKE) --no-print-directory $(VENV_STAMP)
	@test -x $(VBIN)/esptool || $(VPY) -m pip install --disable-pip-version-check -q "$(ESPTOOL)"
	$(VBIN)/esptool --chip $(CHIP) --port $(DEVICE_PORT) erase-flash
	$(VBIN)/esptool --chip $(CHIP) --port $(DEVICE_PORT) --baud $(BAUD) write-flash -z $(FLASH_ADDR) "$(FIRMWARE)"

MPREMOTE_BIN := $(VBIN)/mpremote
$(MPREMOTE_BIN): | $(VENV_STAMP)
	$(VPY) -m pip install --disable-pip-version-check -q "$(MPREMOTE)"

bundle: $(VENV_STAMP)
	$(VPY) tools/bundle.py --board $(BOARD) --out $(BUNDLE) $(if $(ARCH),--arch $(ARCH))

# The bundle's files (checked against its manifest) plus firmware/config.json if any.
deploy: bundle $(MPREMOTE_BIN)
	$(VPY) tools/deploy.py --port $(DEVICE_PORT) --bundle $(BUNDLE)

console: $(MPREMOTE_BIN)
	$(MPREMOTE_BIN) connect $(DEVICE_PORT) repl

# The code as a ROMFS image (tools/romfs.py): .mpy bytecode runs from flash
# instead of being copied into RAM. Needs a MicroPython built with ROMFS and a
# "romfs" partition; tools/deploy.py asks the board first (mpremote romfs query)
# and refuses a stock image, changing nothing. boot.py, main.py, the board file
# and config.json stay on the writable filesystem. docs/DEVICE.md.
deploy-romfs: build $(MPREMOTE_BIN)
	$(VPY) tools/romfs.py $(BOARD_BUILD) -o $(ROMFS_IMAGE)
	$(VPY) tools/deploy.py --port $(DEVICE_PORT) --romfs $(ROMFS_IMAGE) $(BOARD_BUILD)

# For a MicroPython image with the firmware frozen in (tools/freeze/manifest.py):
# only boot.py, main.py, the board file, config.json and web/static go onto the filesystem.
deploy-frozen: build $(MPREMOTE_BIN)
	$(VPY) tools/deploy.py --port $(DEVICE_PORT) --frozen $(BOARD_BUILD)

# ---------------------------------------------------------------- clean
clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path './typings/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(HA_VENV) typings tools/mp/node_modules
