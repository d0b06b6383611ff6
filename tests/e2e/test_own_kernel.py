"""`cloud-boot kernel` through the CLI: the x86_64 cloud kernel (built on first use in the build root, then taken
from the cache) is written to -o as an EFI application with the release, size and cache key printed; and our
cloud kernel of every arch, started by EDK2 as the EFI application it is, runs a Debian userland (busybox-static
of the arch, the marker initrd). The init e2e (test_init_boot, test_init_plan) boots the same kernels through the
whole of Path A on all four arches."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudboot.cli import main as cli
from cloudboot.harness import trial
from cloudboot.image.pe import PeImage

pytestmark = pytest.mark.e2e


def test_cloud_kernel_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    built = trial.own_kernel("x86_64")  # the cache the init tests use
    out = tmp_path / "vmlinuz"
    assert cli(["kernel", "--arch", "amd64", "--variant", "cloud", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_bytes() == built.image.read_bytes()
    PeImage(out.read_bytes(), str(out)).check_efi("x86_64")  # the EFI stub: firmware and UKIs start it
    assert f"{out}: {out.stat().st_size} bytes" in printed
    assert f"linux {built.info['release']} x86_64 cloud" in printed and built.info["release"].endswith(
        "-cloud-boot-cloud"), printed
    assert f"cache key {built.info['key'][:16]}" in printed
    config = built.config.read_text()
    assert "# CONFIG_MODULES is not set" in config and "CONFIG_VIRTIO_NET=y" in config


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "riscv64", "loongarch64"])
def test_cloud_kernel_runs_debian_userland(arch: str) -> None:
    """EDK2 starts our kernel (bzImage or EFI zboot), which runs the arch's Debian busybox as /init: on loongarch64
    that needs the SIMD units enabled (Debian's loong64 code uses LSX)."""
    if why := trial.own_kernel_missing(arch):
        pytest.skip(why)
    q = trial.machine(arch, trial.boot_kernel(arch, "our"), trial.target_initrd(arch), "panic=-1", efi=True).start()
    try:
        q.expect_line(trial.MARKER, 600)
        assert q.wait(120) == 0  # the marker init powers off
        assert "Kernel panic" not in q.text
    finally:
        q.kill()
