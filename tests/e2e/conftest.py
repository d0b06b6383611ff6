"""Fixtures for tests that boot QEMU: the four arches, our built firmware, a machine that is always killed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import arches
from cloudboot.fwbuild.firmware import firmware_dir
from cloudboot.harness.machine import Machine
from cloudboot.harness.repl import Repl

ARCHES = list(arches.NAMES)


def firmware_file(arch: str) -> Path:
    """build/firmware/BOOT<ARCH>.EFI; missing is a failure under CI (make test builds it), a skip otherwise."""
    path = firmware_dir() / arches.get(arch).efi_name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: `make test` builds it before pytest runs")
        pytest.skip(f"{path} not built (run `make firmware`)")
    return path


@pytest.fixture(params=ARCHES)
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def machine():
    """Factory: machine(arch, **Machine kwargs) -> a started Machine, killed at teardown."""
    started: list[Machine] = []

    def make(arch: str, **kw) -> Machine:
        m = Machine(arch, **kw).start()
        started.append(m)
        return m

    yield make
    for m in started:
        m.kill()


@pytest.fixture(scope="module", params=ARCHES)
def firmware_repl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One booted firmware per arch (in the REPL), shared by a module's read-only checks.

    It has LoadOptions `cloudboot.repl cb.test=<arch>` and a 1 MiB data disk of known bytes."""
    arch = request.param
    disk = tmp_path_factory.mktemp(f"disk-{arch}") / "data.img"
    disk.write_bytes(bytes((i * 7 + 3) % 251 for i in range(1 << 20)))
    m = Machine(arch, efi=firmware_file(arch), append=f"cloudboot.repl cb.test={arch}", disks=[disk]).start()
    repl = Repl(m)
    try:
        repl.wait_banner(120)
        repl.enter(60)
        yield arch, repl, disk
    finally:
        m.kill()
