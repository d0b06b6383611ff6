"""`cloud-boot build`'s inputs: every flag checked before anything is downloaded or built (through the CLI, with
the build step replaced by a tripwire), the UKI command line the flags make, kernel-package forms, and which
kernels the medium compresses."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import arches
from cloudboot.cli import main as cli
from cloudboot.errors import CloudBootError
from cloudboot.medium import build as medium_build
from cloudboot.medium import parts
from cloudboot.medium.options import Options, check


def _pe(machine: int) -> bytes:
    """A minimal PE32+ EFI application header for `machine` (what the firmware check reads)."""
    pe = bytearray(1024)
    pe[:2] = b"MZ"
    struct.pack_into("<I", pe, 0x3C, 0x80)
    pe[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", pe, 0x84, machine, 0, 0, 0, 0, 240, 0x22)
    struct.pack_into("<H", pe, 0x98, 0x20B)
    struct.pack_into("<H", pe, 0x98 + 68, 10)  # subsystem: EFI application
    struct.pack_into("<II", pe, 0x98 + 32, 0x1000, 0x200)
    return bytes(pe)


@pytest.fixture
def fw(tmp_path: Path) -> Path:
    d = tmp_path / "firmware"
    d.mkdir()
    for a in arches.ARCHES:
        (d / a.efi_name).write_bytes(_pe(a.pe_machine))
    return d


def _check(fw: Path, tmp_path: Path, **kw):
    return check(Options(firmware_dir=fw, output=tmp_path / "boot.iso", **kw))


def test_command_lines_per_arch(fw: Path, tmp_path: Path) -> None:
    m = _check(fw, tmp_path)
    assert [a.name for a in m.arches] == ["x86_64", "aarch64", "riscv64", "loongarch64"]
    assert m.cmdlines == {"x86_64": "console=ttyS0 quiet", "aarch64": "console=ttyAMA0 quiet",
                          "riscv64": "console=ttyS0 quiet", "loongarch64": "console=ttyS0 quiet"}
    m = _check(fw, tmp_path, arch=["amd64,arm64"], plan="http://10.0.2.2:5000/p/plan:v1", target="my target",
               insecure=True, exit="kexec", metadata_url="http://169.254.169.254/m.json", cmdline="console=hvc0",
               extra_cmdline='x="a b"', verbose=True)
    assert m.cmdlines["aarch64"] == ('console=hvc0 cloudboot.plan=http://10.0.2.2:5000/p/plan:v1 '
                                     'cloudboot.target="my target" cloudboot.insecure=1 cloudboot.exit=kexec '
                                     'cloudboot.metadata.url=http://169.254.169.254/m.json x="a b"')
    from bootplan.cmdline import parse

    assert parse(m.cmdlines["x86_64"])["cloudboot.target"] == "my target"  # the init reads what we meant
    assert _check(fw, tmp_path, image="reg.example/i:1").cmdlines["riscv64"] == \
        "console=ttyS0 quiet cloudboot.image=reg.example/i:1"


@pytest.mark.parametrize("options, message", [
    ({"arch": ["sparc"]}, "--arch: unknown architecture 'sparc'"),
    ({"plan": "a.example/p:1", "image": "a.example/i:1"}, "--plan and --image: give at most one"),
    ({"plan": "no-registry"}, "--plan 'no-registry': missing repository"),
    ({"image": "reg.example/UPPER:1"}, "--image 'reg.example/UPPER:1': bad repository component"),
    ({"metadata_url": "ftp://x/y"}, "--metadata-url 'ftp://x/y': want an http:// or https:// URL"),
    ({"target": ""}, "--target: empty value"),
    ({"target": 'a"b'}, "--target: unbalanced double quote"),
    ({"cmdline": "console=ttyS0\nx"}, "--cmdline: character '\\n' at offset 13 is not printable ASCII"),
    ({"extra_cmdline": "x" * 3000}, "the command line for x86_64 is 3020 characters"),
    ({"exit": "halt"}, "--exit 'halt': want one of 'kexec', 'reboot'"),
    ({"extra_cmdline": "cloudboot.exitt=kexec"}, "the command line for x86_64: unknown key cloudboot.exitt="),
    ({"cmdline": "cloudboot.menu=2"}, "the command line for x86_64: bad kernel command line value cloudboot.menu="),
    ({"kernel_package": ["6.12.1-amd64"]}, "several arches get a UKI"),
    ({"kernel_package": ["loong64=7.2"], "arch": ["x86_64"]}, "loongarch64 is not in this build (--arch: x86_64)"),
    ({"kernel_package": ["x86_64=bad version"]}, "want a kernel release"),
    ({"kernel": "our", "kernel_package": ["x86_64=6.12.1-amd64"]}, "does not go with --kernel our"),
    ({"kernel": "ours"}, "--kernel 'ours': use debian or our"),
    ({"cosign_key": Path("/nonexistent/cosign.pub")}, "--cosign-key /nonexistent/cosign.pub: No such file"),
])
def test_bad_inputs(fw: Path, tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(CloudBootError) as err:
        _check(fw, tmp_path, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_outputs_and_firmware_checked(fw: Path, tmp_path: Path) -> None:
    key = tmp_path / "not-a-key.pub"
    key.write_text("hello")
    with pytest.raises(CloudBootError, match="not a PEM public key"):
        _check(fw, tmp_path, cosign_key=key)
    with pytest.raises(CloudBootError, match="-o .*: the directory .*nowhere does not exist"):
        check(Options(firmware_dir=fw, output=tmp_path / "nowhere" / "boot.iso"))
    with pytest.raises(CloudBootError, match="-o .*: is a directory"):
        check(Options(firmware_dir=fw, output=tmp_path))
    (fw / "BOOTAA64.EFI").write_bytes(_pe(0x8664))
    with pytest.raises(CloudBootError, match="BOOTAA64.EFI: PE machine 0x8664 is not aarch64's"):
        _check(fw, tmp_path)
    (fw / "BOOTAA64.EFI").unlink()
    with pytest.raises(CloudBootError, match="no firmware for aarch64; build it first: cloud-boot firmware"):
        _check(fw, tmp_path)
    assert _check(fw, tmp_path, arch=["x86_64"], kernel_package=["6.12.117+deb13-amd64"]).kernel_package == \
        {"x86_64": "6.12.117+deb13-amd64"}
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key.write_bytes(pem)
    (fw / "BOOTAA64.EFI").write_bytes(_pe(0xAA64))
    checked = _check(fw, tmp_path, cosign_key=key)
    assert checked.cosign_pem == pem and checked.crypto  # a key needs the crypto modules to check signatures
    assert _check(fw, tmp_path, luks=True).crypto and not _check(fw, tmp_path).crypto  # --luks: LUKS opens


def test_cli_checks_before_building(fw: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A bad flag is one line and status 1 (2: a usage error), and nothing is built or downloaded (the build
    is a tripwire)."""
    def tripwire(*a, **k):
        raise AssertionError("the build started before the inputs were checked")

    monkeypatch.setattr(medium_build, "build", tripwire)
    for argv, status in ((["--plan", "x"], 1), (["--arch", "nope"], 2), (["--metadata-url", "file:///etc/passwd"], 1),
                         (["--kernel-package", "1.0"], 1)):
        assert cli(["build", "--firmware-dir", str(fw), "-o", str(tmp_path / "b.iso"), *argv]) == status
        err = capsys.readouterr().err
        assert err.startswith("cloud-boot: error: ") and err.count("\n") == 1, err


def test_which_kernels_are_compressed() -> None:
    bz = bytearray(4096)
    bz[:2], bz[0x202:0x206] = b"MZ", b"HdrS"
    zboot = bytearray(4096)
    zboot[:8] = b"MZ\0\0zimg"
    image = bytearray(4096)
    image[:2], image[56:60] = b"MZ", b"ARM\x64"
    assert parts.self_unpacking(bytes(bz)) and parts.self_unpacking(bytes(zboot))
    assert parts.self_unpacking(b"\x28\xb5\x2f\xfd" + bytes(100)) and parts.self_unpacking(b"\x1f\x8b" + bytes(100))
    assert not parts.self_unpacking(bytes(image))
