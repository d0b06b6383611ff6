"""`cloud-boot uki` and `inspect`: sections after the stub's, aligned, checksummed; oracles pefile and objdump."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pefile
import pytest

from cloudboot.fwbuild.hello import build_hello


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello("x86_64", tmp_path_factory.mktemp("stub"))


def test_uki_sections_and_inspect(tmp_path: Path, stub: Path) -> None:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    kernel.write_bytes(bytes(range(256)) * 1000)
    initrd.write_bytes(b"070701" + bytes(5000))
    out = tmp_path / "uki.efi"
    proc = _cli("uki", "--stub", str(stub), "--linux", str(kernel), "--initrd", str(initrd), "--cmdline",
                "console=ttyS0 quiet", "--uname", "6.12.0", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    pe = pefile.PE(str(out))
    names = [s.Name.rstrip(b"\0").decode() for s in pe.sections]
    assert names[-5:] == [".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    assert pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    prev_end = 0
    for s in pe.sections:
        assert s.VirtualAddress % pe.OPTIONAL_HEADER.SectionAlignment == 0 and s.VirtualAddress >= prev_end
        assert s.PointerToRawData % pe.OPTIONAL_HEADER.FileAlignment == 0
        prev_end = s.VirtualAddress + s.Misc_VirtualSize
    assert pe.OPTIONAL_HEADER.SizeOfImage == (prev_end + 0xFFF) & ~0xFFF
    linux = pe.sections[names.index(".linux")]
    assert linux.get_data()[:linux.Misc_VirtualSize] == kernel.read_bytes()
    if shutil.which("objdump"):
        heads = subprocess.run(["objdump", "-h", str(out)], capture_output=True, text=True).stdout
        for name in names[-5:]:
            assert name in heads
    info = json.loads(_cli("inspect", str(out), "--json").stdout)
    texts = {s["name"]: s.get("text") for s in info["sections"]}
    assert texts[".cmdline"] == "console=ttyS0 quiet\n" and texts[".uname"] == "6.12.0\n"
    assert info["machine"] == "x86_64" and info["signed"] is False


def test_uki_is_reproducible(tmp_path: Path, stub: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\0KERNEL" * 500)
    outs = []
    for name in ("a.efi", "b.efi"):
        proc = _cli("uki", "--stub", str(stub), "--linux", str(kernel), "--cmdline", "x", "-o", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        outs.append(tmp_path / name)
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_uki_refuses_signed_stub_and_machine_mismatch(tmp_path: Path, stub: Path) -> None:
    signed = bytearray(stub.read_bytes())
    opt = struct.unpack_from("<I", signed, 0x3C)[0] + 24
    struct.pack_into("<II", signed, opt + 112 + 4 * 8, len(signed), 8)  # a certificate table entry
    (tmp_path / "signed.efi").write_bytes(bytes(signed))
    proc = _cli("uki", "--stub", str(tmp_path / "signed.efi"), "--linux", str(stub), "-o", str(tmp_path / "o.efi"))
    assert proc.returncode == 1 and "already signed" in proc.stderr
    arm = build_hello("aarch64", tmp_path)
    proc = _cli("uki", "--stub", str(stub), "--linux", str(arm), "-o", str(tmp_path / "o.efi"))
    assert proc.returncode == 1 and "does not match the stub" in proc.stderr
    assert not (tmp_path / "o.efi").exists()


def test_fuzz_inspect_only_clean_errors(tmp_path: Path, stub: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from cloudboot.commands.inspect import describe
    from cloudboot.errors import CloudBootError

    original = stub.read_bytes()
    target = tmp_path / "fuzz.efi"

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1, max_size=8),
           st.integers(64, len(original)))
    def run(edits: list[tuple[int, int]], cut: int) -> None:
        data = bytearray(original[:cut])
        for pos, value in edits:
            if pos < len(data):
                data[pos] = value
        target.write_bytes(bytes(data))
        try:
            describe(target)
        except CloudBootError:
            pass

    run()


def test_ukify_inspect_agrees_with_ours(tmp_path: Path, stub: Path) -> None:
    from cloudboot.harness.oracles import ukify

    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    kernel.write_bytes(bytes(range(256)) * 300)
    initrd.write_bytes(b"070701" + bytes(999))
    out = tmp_path / "uki.efi"
    assert _cli("uki", "--stub", str(stub), "--linux", str(kernel), "--initrd", str(initrd), "--cmdline",
                "root=LABEL=x", "--uname", "6.1", "-o", str(out)).returncode == 0
    theirs = json.loads(subprocess.run([sys.executable, str(ukify()), "inspect", str(out), "--json=short"],
                                       capture_output=True, text=True, check=True).stdout)
    ours = {s["name"]: s for s in json.loads(_cli("inspect", str(out), "--json").stdout)["sections"]}
    assert set(theirs) == {".osrel", ".cmdline", ".uname", ".linux", ".initrd"}
    for name, t in theirs.items():
        assert (ours[name]["size"], ours[name]["sha256"]) == (t["size"], t["sha256"]), name
        if "text" in t:
            assert ours[name]["text"] == t["text"]
