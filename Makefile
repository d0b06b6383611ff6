# cloud-boot: the two commands a newcomer needs are `make iso` and `make test`.
# Everything else (deps, firmware, run, bench, lint) is reachable too. Each target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
ARCH   ?= all
PY     := $(VENV)/bin/python
CB     := $(VENV)/bin/cloud-boot
STAMP  := $(VENV)/.installed

.PHONY: all deps firmware iso demo test unit bench run lint clean fuzz fixtures-openzfs
all: iso

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "+ apt-get install -y python3 python3-venv (python3 -m venv is missing)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on -q -e '.[test]'
	@touch $@

deps: $(STAMP)
	$(CB) deps

firmware: $(STAMP)
	$(CB) deps --no-qemu
	$(CB) firmware --arch $(ARCH)

# The cloud medium: firmware + a UKI (Debian kernel + our init) per arch where the init runs, in one hybrid ISO.
iso: firmware
	$(CB) build --arch $(ARCH) -o build/boot.iso

# build/boot.iso booting from a plan in a throw-away local registry, console on this terminal (Ctrl-C quits).
demo: $(STAMP)
	$(CB) deps
	$(CB) demo --arch $(if $(filter all,$(ARCH)),x86_64,$(ARCH)) build/boot.iso

run: $(STAMP)
	$(CB) qemu --arch $(if $(filter all,$(ARCH)),x86_64,$(ARCH)) --built --interactive

test: $(STAMP)
	$(CB) deps
	$(CB) firmware --arch all
	$(PY) -m ruff check host harness firmware/modules tests bench
	$(PY) -m pytest $(PYTEST_ARGS)

# The OpenZFS test pools (zfs-dkms built in a trixie chroot for the fixture VM's kernel: about 30 minutes on a
# cold cache, then cached). `make test` builds them only when CLOUDBOOT_OPENZFS=1 or when that cache exists.
fixtures-openzfs: $(STAMP)
	$(CB) deps
	$(PY) -m tests.portable.images --openzfs

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(CB) deps
	$(CB) firmware --arch all
	$(PY) -m bench $(BENCH_ARGS)

# The mutation fuzzers, long: FUZZ_SECONDS per format (ext4, XFS, btrfs, ZFS, LUKS1, LUKS2) and per disk image
# (qcow2, UDIF variants), default 600 each.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest tests/unit/test_fs_fuzz.py tests/unit/test_diskimage_fuzz.py -k metadata -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check host harness firmware/modules tests bench

clean:
	rm -rf build
