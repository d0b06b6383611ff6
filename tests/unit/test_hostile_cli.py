"""The CLI's top-level guard and its terminal: an unexpected exception (a bug) is one line and a status, its
traceback only under `--debug` or CLOUDBOOT_DEBUG=1; names read from untrusted images reach the terminal escaped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.hostile import cli, ok, refused

# A verb with a bug: `plan check` replaced by one that raises what no library means to raise, with a message that
# carries a terminal escape.
BUGGY = ("import cloudboot.commands.plan as m\n"
         "def boom(args):\n"
         "    raise RuntimeError('\\x1b]0;pwned\\x07')\n"
         "m._check = boom\n"
         "from cloudboot.cli import main\n"
         "raise SystemExit(main())\n")


def buggy(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BUGGY, *args], capture_output=True, timeout=60,
                          env={**{k: v for k, v in os.environ.items() if k != "CLOUDBOOT_DEBUG"}, **(env or {})})


def test_a_bug_is_one_line_and_a_status_with_the_traceback_only_when_asked(tmp_path: Path) -> None:
    proc = buggy("plan", "check", "x.hcl")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("cloud-boot: error: internal error (RuntimeError: \\e]0;pwned\\x07); this is a bug"), err
    assert "please report it" in err and "--debug" in err and "\x1b" not in err and "\x07" not in err, err
    for how in (buggy("--debug", "plan", "check", "x.hcl"), buggy("plan", "check", "x.hcl",
                                                                   env={"CLOUDBOOT_DEBUG": "1"})):
        err = how.stderr.decode()
        assert how.returncode == 1 and "Traceback (most recent call last)" in err and "def boom" not in err, err
        assert "in boom" in err and err.rstrip().splitlines()[-1].startswith("cloud-boot: error: internal error")
    assert "Traceback" not in buggy("plan", "check", "x.hcl", env={"CLOUDBOOT_DEBUG": "0"}).stderr.decode()


@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="mkfs.ext4 (e2fsprogs) missing")
def test_names_from_an_image_are_escaped_on_the_terminal(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in (b"red\x1b[31mX", b"two\nlines", b"bad\xff", b"rtl\xe2\x80\xaeevil", b"plain"):
        with open(os.path.join(os.fsencode(tree), name), "wb") as f:
            f.write(b"x")
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(img)], check=True, capture_output=True)
    out = ok(subprocess.run([sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())",
                             "fs", "ls", str(img), "/"], capture_output=True, timeout=60))
    assert "\x1b" not in out and "\u202e" not in out, out
    names = set(out.split())
    assert {"red\\e[31mX", "two\\nlines", "bad\\xff", "rtl\\u202eevil", "plain"} <= names, out


def test_options_that_were_tracebacks_or_ignored(tmp_path: Path, testdata: str) -> None:
    """`fs --subvol`/`--device` on ext4 or XFS (a traceback, or silently ignored), `IMG@LABEL=` with no value, a
    missing or unreadable `--ca-file`: each one line naming what is wrong."""
    ext4, xfs = str(Path(testdata) / "ext4-many.img"), str(Path(testdata) / "xfs-many.img")
    refused(cli("fs", "ls", "--subvol", "5", ext4, "/"), "--subvol is for btrfs; this is ext2/3/4")
    refused(cli("fs", "ls", "--device", xfs, xfs, "/"), "--device is for btrfs; this is XFS")
    refused(cli("fs", "ls", ext4 + "@LABEL=", "/"), "@LABEL=: partition must be", "with a value")
    junk = tmp_path / "ca.pem"
    junk.write_text("junk")
    for ca, why in ((tmp_path / "none.pem", "No such file"), (junk, "no certificate")):
        refused(cli("pull", "127.0.0.1:1/x:1", "-d", str(tmp_path / "o"), "--ca-file", str(ca)), f"--ca-file {ca}: ",
                why)


def test_numbers_a_json_plan_cannot_hold(tmp_path: Path) -> None:
    """A 5000-digit integer in a JSON plan was CPython's own advice (`sys.set_int_max_str_digits()`); 1e999 went
    through as infinity: each is now the plan language's out-of-range line, as in HCL."""
    for name, number, want in (("digits", "9" * 5000, "number 9999999999999999999999999999999999999999... out of "
                                "range (whole numbers go up to 9223372036854775807)"),
                               ("below", "-9223372036854775809", "out of range"),
                               ("infinite", "1e999", "number 1e999 out of range")):
        path = tmp_path / f"{name}.json"
        path.write_text('{"format": "cloud-boot.plan.v1", "attrs": {}, "blocks": [], "n": ' + number + "}")
        line = refused(cli("plan", "check", str(path)), f"{path}: not JSON: ", want)
        assert "sys." not in line, line


def test_pe_section_names_are_escaped_on_the_terminal(tmp_path: Path) -> None:
    """A section name is 8 untrusted bytes: `inspect` shows an escape sequence, a newline or a byte that is not
    UTF-8 as visible escapes, never raw."""
    import struct

    from cloudboot.fwbuild.hello import build_hello

    data = bytearray(build_hello("x86_64", tmp_path).read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    table = pe + 24 + struct.unpack_from("<H", data, pe + 20)[0]
    data[table:table + 8] = b"\x1b[31m\n\xff\x07"
    path = tmp_path / "names.efi"
    path.write_bytes(bytes(data))
    out = ok(cli("inspect", str(path)))
    assert "\x1b" not in out and "\x07" not in out, out
    assert out.splitlines()[1].startswith("  \\e[31m\\n"), out


def test_a_key_file_that_never_ends_is_refused_and_a_fifo_still_works(testdata: str, tmp_path: Path) -> None:
    """`--key-file /dev/zero` (or `--passphrase-file /dev/urandom`) was read forever: past cryptsetup's 8 MiB key
    file limit it is one line now. A passphrase from a FIFO (`<(pass show disk)`) is still read."""
    import threading

    image = str(Path(testdata) / "luks1-xts-sha512.img")
    for flag, source in (("--key-file", "/dev/zero"), ("--passphrase-file", "/dev/urandom")):
        refused(cli("fs", "ls", flag, source, image, "/", timeout=60), f"{flag} {source}: more than 8 MiB")
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes("correct horse \u2713\n".encode()), daemon=True)
    writer.start()
    assert "boot" in ok(cli("fs", "ls", "--passphrase-file", str(fifo), image, "/", timeout=120)).split()
    writer.join(10)


def test_nonsense_numbers_are_refused_before_any_work(tmp_path: Path) -> None:
    """Numbers that built or booted something wrong: `initramfs --level 999` built at zstd's highest level,
    `--level -5` ran the whole build and then failed in zstd, `--max-mib 0` built an image to refuse it; `qemu
    --timeout 0` killed QEMU at once, `--memory -5` was handed to QEMU. Each is one line before any work."""
    out = str(tmp_path / "i.cpio.zst")
    for args, want, status in (
            (["--level", "999"], "--level 999: zstd levels go from 1 to 19", 1),
            (["--level", "-5"], "--level -5: zstd levels go from 1 to 19", 1),
            (["--compression", "xz", "--level", "3"], "xz takes no level", 1),
            (["--max-mib", "0"], "--max-mib: '0' is not a number above 0", 2)):
        refused(cli("initramfs", "--arch", "amd64", *args, "-o", out, timeout=60), want, status=status)
    for args, want in ((["--timeout", "0"], "--timeout: '0' is not a number above 0"),
                       (["--memory", "-5"], "--memory: '-5' is not a whole number above 0")):
        refused(cli("qemu", "--arch", "amd64", *args, out, timeout=60), want, status=2)
    assert os.listdir(tmp_path) == []


def test_a_closed_standard_output_is_one_line(tmp_path: Path) -> None:
    """`cloud-boot inspect X >&-` was an AttributeError (sys.stdout is None); output to a full device is the
    error line too."""
    from cloudboot.fwbuild.hello import build_hello

    app = str(build_hello("x86_64", tmp_path))
    main = "from cloudboot.cli import main; raise SystemExit(main())"
    proc = subprocess.run([sys.executable, "-c", main, "inspect", app], stderr=subprocess.PIPE, timeout=60,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode == 1 and proc.stderr.decode() == ("cloud-boot: error: standard output is closed (send it "
                                                             "to /dev/null to discard it)\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", main, "inspect", app], stdout=full, stderr=subprocess.PIPE,
                              timeout=60)
    assert proc.returncode == 1 and proc.stderr.decode() == "cloud-boot: error: No space left on device\n"


def test_arguments_that_are_not_utf8(registry, tmp_path: Path) -> None:
    """Bytes that are not UTF-8 in a text argument reached an encoder as surrogate escapes (UnicodeEncodeError):
    each text that must be UTF-8 is one line naming it now, and a cosign password is taken as the bytes given."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from cloudboot.fwbuild.hello import build_hello
    from cloudboot.registry.cosign import write_encrypted_key

    bad = os.fsdecode(b"a\xff")  # what Python makes of such an argument
    app = str(build_hello("x86_64", tmp_path))
    kernel = tmp_path / "k"
    kernel.write_bytes(b"kernel")
    ref = f"{registry.host}/hostile/utf8:1"
    cases = [(["uki", "--stub", app, "--linux", app, "--cmdline", bad, "-o", str(tmp_path / "u.efi")], "--cmdline"),
             (["uki", "--stub", app, "--linux", app, "--uname", bad, "-o", str(tmp_path / "u.efi")], "--uname"),
             (["push", "artifact", ref, "--platform", "linux/amd64", "--cmdline", bad], "--cmdline"),
             (["push", "multi", ref, "--kernel", f"linux/amd64={kernel}", "--cmdline", bad], "--cmdline"),
             (["genkey", "-d", str(tmp_path), "--cn", bad], "--cn"),
             (["pull", ref, "-d", str(tmp_path / "o"), "--username", bad], "the registry user name")]
    for args, what in cases:
        refused(cli(*args), f"{what}: byte 0xff at offset 1 is not UTF-8 text")
    ok(cli("push", "artifact", ref, "--platform", "linux/amd64", "--kernel", str(kernel)))
    key = tmp_path / "cosign.key"
    write_encrypted_key(ec.generate_private_key(ec.SECP256R1()), key, b"p\xff", n=1024)
    env = {**os.environb, b"COSIGN_PASSWORD": b"p\xff"}
    proc = subprocess.run([sys.executable, "-c", "from cloudboot.cli import main; raise SystemExit(main())",
                           "sign-artifact", ref, "--cosign-key", str(key)], capture_output=True, env=env, timeout=120)
    assert ok(proc).startswith(f"{registry.host}/hostile/utf8@sha256:"), proc.stderr
    ok(cli("pull", ref, "-d", str(tmp_path / "o"), "--cosign-key", str(key.with_suffix(".pub"))))
