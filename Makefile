# cloud-boot: the two commands a newcomer needs are `make iso` and `make test`.
# Everything else (deps, firmware, run, bench, lint) is reachable too. Each target installs what it needs:
# building needs only the package's own dependencies (wheels), testing adds the `test` extra on top.
PYTHON ?= python3
VENV   ?= .venv
ARCH   ?= all
SUITE  ?= trixie
PY     := $(VENV)/bin/python
CB     := $(VENV)/bin/cloud-boot
STAMP  := $(VENV)/.installed
TESTS  := $(VENV)/.installed-test

.PHONY: all deps firmware kernel iso demo test unit bench run lint clean fuzz soak fixtures-openzfs check-fresh
all: iso

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "+ apt-get install -y python3 python3-venv (python3 -m venv is missing)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on -q -e .
	@touch $@

$(TESTS): $(STAMP)
	$(PY) -m pip install --progress-bar on -q -e '.[test]'
	@touch $@

deps: $(TESTS)
	$(CB) deps

firmware: $(STAMP)
	$(CB) deps --no-qemu
	$(CB) firmware --arch $(ARCH)

# Our bootstrap kernels (kernel/ fragments on Debian's linux source, built with LLVM in a trixie build root; cached
# by their inputs): build/kernel/vmlinuz-ARCH-VARIANT for ARCH (all, one or a comma list) and VARIANT (cloud|disk).
VARIANT ?= cloud
kernel: $(STAMP)
	$(CB) deps --no-qemu
	@mkdir -p build/kernel
	@for a in $$($(PY) -c 'import sys, arches; print(" ".join(a.name for a in arches.select(sys.argv[1])))' \
	    '$(ARCH)'); do $(CB) kernel --arch $$a --variant $(VARIANT) -o build/kernel/vmlinuz-$$a-$(VARIANT) || exit 1; done

# The cloud medium: firmware + a UKI (Debian kernel + our init) per arch where the init runs, in one hybrid ISO.
iso: firmware
	$(CB) build --arch $(ARCH) -o build/boot.iso

# build/boot.iso booting from a plan in a throw-away local registry, console on this terminal (Ctrl-C quits).
demo: $(STAMP)
	$(CB) deps
	$(CB) demo --arch $(if $(filter all,$(ARCH)),x86_64,$(ARCH)) build/boot.iso

run: $(STAMP)
	$(CB) qemu --arch $(if $(filter all,$(ARCH)),x86_64,$(ARCH)) --built --interactive

test: $(TESTS)
	$(CB) deps
	$(CB) firmware --arch all
	$(PY) -m ruff check host harness firmware/modules tests bench .ci
	$(PY) -m pytest $(PYTEST_ARGS)

# The OpenZFS test pools (zfs-dkms built in a trixie chroot for the fixture VM's kernel: about 30 minutes on a
# cold cache, then cached). `make test` builds them only when CLOUDBOOT_OPENZFS=1 or when that cache exists.
fixtures-openzfs: $(TESTS)
	$(CB) deps
	$(PY) -m tests.portable.images --openzfs

unit: $(TESTS)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(CB) deps
	$(CB) firmware --arch all
	$(PY) -m bench $(BENCH_ARGS)

# The mutation fuzzers, long: FUZZ_SECONDS per filesystem (ext4, XFS, btrfs, ZFS, LUKS1, LUKS2), per disk image (qcow2, UDIF
# variants) and per parser of untrusted text (plan HCL, plan JSON, OCI manifests and indexes), default 600 each;
# each prints how many examples it ran.
FUZZ_SECONDS ?= 600
fuzz: $(TESTS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest tests/unit/test_fs_fuzz.py tests/unit/test_diskimage_fuzz.py \
	  tests/unit/test_parser_fuzz.py -k "metadata or fuzz_parsers_plan or fuzz_parsers_oci" -p no:cacheprovider -s \
	  $(PYTEST_ARGS)

# Path C soak (not in CI): SOAK_CYCLES of stage -> reboot -> target -> reset in one VM (about 40 s a cycle on x86_64).
SOAK_CYCLES ?= 100
SOAK_ARCH   ?= x86_64
soak: $(TESTS)
	$(CB) deps
	$(CB) firmware --arch $(SOAK_ARCH)
	$(PY) -m tests.soak_pathc --cycles $(SOAK_CYCLES) --arch $(SOAK_ARCH)

lint: $(TESTS)
	$(PY) -m ruff check host harness firmware/modules tests bench .ci

# The README's two commands in a fresh `debootstrap --variant=minbase $(SUITE)` root (trixie or bookworm), as a new
# user runs them: root only, 30-60 min, not part of CI's run. Run it before resolving installation, fixture or
# toolchain issues. PYTEST_ARGS='tests/unit tests/portable' narrows make test's pytest run there; the root stays
# until the next run, and AGAIN='PYTEST_ARGS' re-runs pytest in it at HEAD (a test alone: load or bug? a fix?).
check-fresh:
	$(PYTHON) .ci/check_fresh.py --suite $(SUITE) $(if $(PYTEST_ARGS),--pytest-args '$(PYTEST_ARGS)') \
	  $(if $(AGAIN),--again '$(AGAIN)')

clean:
	rm -rf build
