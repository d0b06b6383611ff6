"""The kernel fragments (kernel/*.config): what each variant merges, and how a dropped or malformed line is
reported. The builds themselves are driven through `cloud-boot kernel` in tests/e2e/test_own_kernel.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import arches
from cloudboot.errors import CloudBootError
from cloudboot.kernel import config


@pytest.mark.parametrize("arch", arches.NAMES)
def test_variants_merge_base_net_and_arch(arch: str) -> None:
    a = arches.get(arch)
    cloud = [p.name for p in config.fragments(a, "cloud")]
    disk = [p.name for p in config.fragments(a, "disk")]
    assert cloud == ["base.config", "net.config", f"{arch}.config"]
    assert disk == ["base.config", f"{arch}.config"]
    wanted = config.settings(config.fragments(a, "cloud"))
    # what the init needs whatever the arch: an EFI-bootable kernel that kexecs, unpacks its initramfs and
    # reaches virtio disks and NICs with nothing loaded as a module
    for option in ("CONFIG_EFI_STUB", "CONFIG_KEXEC", "CONFIG_BLK_DEV_INITRD", "CONFIG_VIRTIO_BLK",
                   "CONFIG_VIRTIO_NET", "CONFIG_VFAT_FS", "CONFIG_EFIVAR_FS", "CONFIG_DEVTMPFS"):
        assert wanted[option].value == "y", (arch, option)
    assert "CONFIG_MODULES" not in wanted
    assert "CONFIG_NET" not in config.settings(config.fragments(a, "disk"))


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(CloudBootError, match="unknown kernel variant 'tiny'.*cloud, disk"):
        config.fragments(arches.get("x86_64"), "tiny")


def test_a_line_that_is_not_a_setting_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frag = tmp_path / "bad.config"
    frag.write_text("# comment\nCONFIG_A=y\n\nCONFIG_B y\n")
    monkeypatch.setattr(config, "ROOT", tmp_path)
    with pytest.raises(CloudBootError, match=r"bad.config:4: not a kernel config line: 'CONFIG_B y'"):
        config.settings([frag])


def test_later_fragment_wins_and_dropped_lines_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "ROOT", tmp_path)
    (tmp_path / "a.config").write_text("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_S=\"x\"\n")
    (tmp_path / "b.config").write_text("CONFIG_B=n\n")
    wanted = config.settings([tmp_path / "a.config", tmp_path / "b.config"])
    assert wanted["CONFIG_B"].value == "n" and wanted["CONFIG_B"].where == "b.config:1"
    final = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_S=\"x\"\n"
    assert config.dropped(wanted, final) == ["a.config:3: CONFIG_C=n (the kernel's Kconfig made it y)"]
    assert config.dropped(wanted, "CONFIG_C=n\nCONFIG_S=\"x\"\n") == [
        "a.config:1: CONFIG_A=y (the kernel's Kconfig made it n)"]


def test_cli_refuses_bad_inputs_before_building(tmp_path: Path) -> None:
    """Each refusal comes at once, one line, before the build root or the source is touched."""
    from tests.unit.hostile import cli, refused

    refused(cli("kernel", "--arch", "sparc", "-o", str(tmp_path / "k")), "unknown architecture 'sparc'", status=2)
    refused(cli("kernel", "--arch", "x86_64", "--variant", "tiny", "-o", str(tmp_path / "k")), "invalid choice",
            status=2)
    refused(cli("kernel", "--arch", "x86_64", "-o", str(tmp_path / "nodir" / "k")),
            f"{tmp_path / 'nodir' / 'k'}: the directory {tmp_path / 'nodir'} does not exist")
    refused(cli("kernel", "--arch", "x86_64", "-o", str(tmp_path)), str(tmp_path))
    refused(cli("kernel", "--arch", "x86_64", "-j", "0", "-o", str(tmp_path / "k")), "-j", status=2)


def test_the_kernel_clock_is_its_changelog_not_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cloud-boot build` sets SOURCE_DATE_EPOCH to the last commit's time: the kernel must not follow it, or
    every commit would rebuild it (a cache miss of ten minutes)."""
    from cloudboot.kernel import build

    (tmp_path / "debian").mkdir()
    (tmp_path / "debian/changelog").write_text(
        "linux (6.12.107-1) trixie-security; urgency=high\n\n  * x\n\n"
        " -- Ben Hutchings <ben@decadent.org.uk>  Tue, 21 Oct 2025 17:12:36 +0200\n")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796572356")
    assert build.epoch(tmp_path) == 1761059556
    (tmp_path / "debian/changelog").write_text("linux (1) trixie; urgency=high\n")
    with pytest.raises(CloudBootError, match="changelog: no dated entry"):
        build.epoch(tmp_path)
