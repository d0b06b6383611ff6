"""`cloud-boot uki` and `inspect`, against systemd's ukify (byte for byte), pefile and objdump as oracles."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pefile
import pytest

from cloudboot.fwbuild.hello import build_hello

STUB_DIR = Path("/usr/lib/systemd/boot/efi")  # Debian's systemd-boot-efi: linux<host arch>.efi.stub


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloudboot", *args], capture_output=True, text=True)


def _ukify(*args: str) -> subprocess.CompletedProcess:
    from cloudboot.harness.oracles import ukify

    return subprocess.run([sys.executable, str(ukify()), *args], capture_output=True, text=True)


def _debian_stub() -> Path:
    stubs = sorted(STUB_DIR.glob("linux*.efi.stub"))
    if not stubs:
        if os.environ.get("CI"):
            pytest.fail(f"no systemd stub in {STUB_DIR}: `cloud-boot deps` installs systemd-boot-efi")
        pytest.skip(f"no systemd stub in {STUB_DIR} (apt-get install systemd-boot-efi)")
    return stubs[0]


def _zero_checksum(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, struct.unpack_from("<I", out, 0x3C)[0] + 24 + 64, 0)
    return bytes(out)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello("x86_64", tmp_path_factory.mktemp("stub"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, stub: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    files = {"linux": bytes(range(256)) * 1200 + b"\x01", "initrd1": b"070701" + bytes(5001),
             "initrd2": b"070701" + b"\xaa" * 777, "cmdline": b"console=ttyS0 root=LABEL=root quiet",
             "osrel": b"ID=cloud-boot\nNAME=cloud-boot\nVERSION_ID=1\n",
             "dtb": b"\xd0\x0d\xfe\xed" + bytes(60),
             "sbat": b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
                     b"cloud-boot,1,cloud-boot,cloud-boot,1,https://example.invalid/\n",
             "extra": b"some extra section\n"}
    out = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    # A PE "kernel" without NX_COMPAT and with its own .sbat (our hello app, given an .sbat by us).
    kern_sbat = d / "kernel.sbat"
    kern_sbat.write_text("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
                         "linux,1,The Linux Developers,linux,6.12,https://linux.org\n")
    pe_kernel = d / "pe-kernel.efi"
    assert _cli("uki", "--stub", str(stub), "--linux", str(out["linux"]), "--sbat", str(kern_sbat),
                "-o", str(pe_kernel)).returncode == 0
    data = bytearray(pe_kernel.read_bytes())
    opt = struct.unpack_from("<I", data, 0x3C)[0] + 24
    struct.pack_into("<H", data, opt + 70, struct.unpack_from("<H", data, opt + 70)[0] & ~0x100)
    pe_kernel.write_bytes(bytes(data))
    out["pe_kernel"] = pe_kernel
    return out


@pytest.mark.parametrize("which", ["hello-x86_64", "debian-systemd-stub", "hello-aarch64", "pe-kernel"])
def test_uki_is_byte_identical_to_ukify(tmp_path: Path, stub: Path, inputs: dict[str, Path],
                                        which: str) -> None:
    """Same stub and inputs through ukify build and through us: the same bytes (ukify leaves CheckSum 0)."""
    use_stub, linux = stub, inputs["linux"]
    if which == "debian-systemd-stub":
        use_stub = _debian_stub()
    elif which == "hello-aarch64":
        use_stub = build_hello("aarch64", tmp_path)
    elif which == "pe-kernel":
        linux = inputs["pe_kernel"]
    common = ["--linux", str(linux), "--initrd", str(inputs["initrd1"]), "--initrd", str(inputs["initrd2"]),
              "--cmdline", f"@{inputs['cmdline']}", "--uname", "6.12.9-cloud"]
    if which != "debian-systemd-stub":  # its headers have room for 7 more sections (ukify counts .sbat)
        common += ["--devicetree", str(inputs["dtb"]), "--section", f".extra:@{inputs['extra']}"]
    ours, theirs = tmp_path / "ours.efi", tmp_path / "ukify.efi"
    proc = _cli("uki", "--stub", str(use_stub), *common, "--osrel", str(inputs["osrel"]), "--sbat",
                str(inputs["sbat"]), "-o", str(ours))
    assert proc.returncode == 0, proc.stderr
    ref = _ukify("build", "--stub", str(use_stub), *common, "--os-release", f"@{inputs['osrel']}", "--sbat",
                 f"@{inputs['sbat']}", "--output", str(theirs))
    assert ref.returncode == 0, ref.stderr
    got = ours.read_bytes()
    assert _zero_checksum(got) == theirs.read_bytes()
    pe = pefile.PE(data=got, fast_load=True)  # (ukify treats these warnings as errors)
    assert pe.get_warnings() == [] and pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    if which == "pe-kernel":  # the kernel lacks NX_COMPAT, so the UKI must not claim it
        assert not pe.OPTIONAL_HEADER.DllCharacteristics & 0x100
        sbat = next(s for s in pe.sections if s.Name.rstrip(b"\0") == b".sbat")
        assert b"linux,1,The Linux Developers" in sbat.get_data()


def test_sections_layout_matches_objdump_and_ukify_inspect(tmp_path: Path, stub: Path,
                                                           inputs: dict[str, Path]) -> None:
    out = tmp_path / "uki.efi"
    proc = _cli("uki", "--stub", str(stub), "--linux", str(inputs["linux"]), "--initrd",
                str(inputs["initrd1"]), "--cmdline", "console=ttyS0 quiet", "--uname", "6.12.0",
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert ".osrel, .cmdline, .uname, .linux, .initrd, .sbat" in proc.stdout
    ours = json.loads(_cli("inspect", str(out), "--json").stdout)
    pe = pefile.PE(str(out))
    sa, fa = pe.OPTIONAL_HEADER.SectionAlignment, pe.OPTIONAL_HEADER.FileAlignment
    prev_end = 0
    for s in pe.sections:
        assert s.VirtualAddress % sa == 0 and s.VirtualAddress >= prev_end
        assert s.PointerToRawData % fa == 0
        prev_end = s.VirtualAddress + s.Misc_VirtualSize
    assert pe.OPTIONAL_HEADER.SizeOfImage == (prev_end + sa - 1) // sa * sa == ours["size_of_image"]
    linux = pe.sections[[s["name"] for s in ours["sections"]].index(".linux")]
    assert linux.get_data()[:linux.Misc_VirtualSize] == inputs["linux"].read_bytes()
    assert linux.Characteristics == 0x40000020  # code, read (ukify: EFI handover kernels run in place)
    # objdump -h: every section with the same size, VMA and file offset as ours.
    heads = subprocess.run(["objdump", "-h", str(out)], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"^\s*\d+\s+(\S+)\s+([0-9a-f]{8})\s+([0-9a-f]{16})\s+[0-9a-f]{16}\s+([0-9a-f]{8})",
                      heads, re.M)
    image_base = pe.OPTIONAL_HEADER.ImageBase
    assert [(n, int(sz, 16), int(vma, 16) - image_base, int(off, 16)) for n, sz, vma, off in rows] == \
        [(s["name"], s["vsize"], s["vaddr"], s["file_offset"]) for s in ours["sections"]]
    # ukify inspect: the same sizes, digests and texts for every section it shows.
    theirs = json.loads(_ukify("inspect", str(out), "--json=short").stdout)
    assert set(theirs) == {".osrel", ".cmdline", ".uname", ".linux", ".initrd", ".sbat"}
    by_name = {s["name"]: s for s in ours["sections"]}
    for name, t in theirs.items():
        assert (by_name[name]["size"], by_name[name]["sha256"]) == (t["size"], t["sha256"]), name
        assert by_name[name].get("text") == t.get("text"), name
    assert ours["machine"] == "x86_64" and ours["signed"] is False and ours["signatures"] == []


def test_uki_is_reproducible(tmp_path: Path, stub: Path, inputs: dict[str, Path]) -> None:
    outs = []
    for name in ("a.efi", "b.efi"):
        proc = _cli("uki", "--stub", str(stub), "--linux", str(inputs["linux"]), "--cmdline", "x", "-o",
                    str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]


def _refused(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "o.efi"
    proc = _cli("uki", *args, "-o", str(out))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".o.efi.*"))


def test_refusals(tmp_path: Path, stub: Path, inputs: dict[str, Path]) -> None:
    signed = bytearray(stub.read_bytes())
    opt = struct.unpack_from("<I", signed, 0x3C)[0] + 24
    struct.pack_into("<II", signed, opt + 112 + 4 * 8, len(signed), 8)  # a certificate table entry
    (tmp_path / "signed.efi").write_bytes(bytes(signed))
    linux = ["--linux", str(inputs["linux"])]
    _refused(tmp_path, ["--stub", str(tmp_path / "signed.efi"), *linux], "already signed")
    arm = build_hello("aarch64", tmp_path)
    _refused(tmp_path, ["--stub", str(stub), "--linux", str(arm)],
             "does not match the stub's 0x8664 (x86_64)")
    _refused(tmp_path, ["--stub", str(stub), *linux, "--section", ".toolong9:x"], "'.toolong9' is not 1 to 8")
    _refused(tmp_path, ["--stub", str(stub), *linux, "--section", ".linux:x"], "duplicate section '.linux'")
    _refused(tmp_path, ["--stub", str(stub), *linux, "--section", ".a:x", "--section", ".a:y"],
             "duplicate section '.a'")
    _refused(tmp_path, ["--stub", str(stub), *linux, "--section", "novalue"], "invalid --section 'novalue'")
    _refused(tmp_path, ["--stub", str(inputs["initrd1"]), *linux], "not a PE32+ image: no MZ header at offset 0")
    _refused(tmp_path, ["--stub", str(tmp_path / "missing.efi"), *linux], "missing.efi: No such file")
    _refused(tmp_path, ["--stub", str(stub), "--linux", str(tmp_path)], "is a directory")
    _refused(tmp_path, ["--stub", str(stub), *linux, "--sbat", str(inputs["extra"])], "not SBAT data")
    # A UKI as the stub already has .osrel, .linux...: refused as duplicates.
    uki = tmp_path / "uki.efi"
    assert _cli("uki", "--stub", str(stub), *linux, "-o", str(uki)).returncode == 0
    _refused(tmp_path, ["--stub", str(uki), *linux], "duplicate section '.osrel'")
    proc = _cli("uki", "--stub", str(stub), *linux, "-o", str(tmp_path / "no-such-dir" / "o.efi"))
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = _cli("uki", "--stub", str(stub), *linux, "-o", str(tmp_path))
    assert proc.returncode == 1 and "is a directory" in proc.stderr


def test_fuzz_inspect_only_clean_errors(tmp_path: Path, stub: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from cloudboot.errors import CloudBootError
    from cloudboot.image.describe import describe

    original = stub.read_bytes()
    target = tmp_path / "fuzz.efi"

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
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
