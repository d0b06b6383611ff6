"""The shared command-line grammar and architecture table: plain asserts, on CPython and MicroPython unix.

The vectors are REFERENCE §1's (the original's own test cases); the firmware runs the same ones in QEMU
(tests/e2e), so all three runtimes are held to one meaning of a command line."""

import arches
from bootplan import cmdline

# (command line, parsed) pairs; the firmware e2e imports this list.
VECTORS = [
    ('a b=c "c=d e" flag', {"a": "1", "b": "c", "c": "d e", "flag": "1"}),
    ('ip="dhcp,ipv4" x', {"ip": "dhcp,ipv4", "x": "1"}),
    ("  k=v\tk2=v2\nk3 ", {"k": "v", "k2": "v2", "k3": "1"}),
    ("k=1 k=2", {"k": "2"}),
    ("a=b=c", {"a": "b=c"}),
    ('x="unterminated y z', {"x": "unterminated y z"}),
    ('p=a"b c"d', {"p": "ab cd"}),
    ("e=", {"e": ""}),
    ("", {}),
    ('cloudboot.menu.prompt="Pick one:" cloudboot.menu.timeout=1m30s',
     {"cloudboot.menu.prompt": "Pick one:", "cloudboot.menu.timeout": "1m30s"}),
]


def test_vectors():
    for text, want in VECTORS:
        got = cmdline.parse(text)
        assert got == want, "parse(%r) = %r; want %r" % (text, got, want)


def test_split_keeps_order():
    assert cmdline.split('b=1 "a b" c') == ["b=1", "a b", "c"]


def test_durations():
    for text, want in (("5s", 5), ("1m30s", 90), ("250ms", 0.25), ("12", 12), ("1.5", 1.5), ("1h", 3600),
                       ("0", 0), ("-2s", -2), ("1.5m", 90), ("2m3ms", 120.003), (" 7s ", 7), ("10us", 1e-5)):
        got = cmdline.duration(text)
        assert abs(got - want) < 1e-9, "duration(%r) = %r; want %r" % (text, got, want)
    for bad in ("", "s", "5x", "5 s", "1..2s", ".s", "-", "m5", "9999999999s", "9" * 400):
        try:
            cmdline.duration(bad)
        except ValueError:
            continue
        raise AssertionError("duration(%r) accepted" % bad)


def test_arch_spellings():
    for name, canonical in (("amd64", "x86_64"), ("X86_64", "x86_64"), ("x64", "x86_64"), ("arm64", "aarch64"),
                            ("aa64", "aarch64"), ("loong64", "loongarch64"), ("riscv64", "riscv64")):
        assert arches.get(name).name == canonical, name
    a = arches.get("aarch64")
    assert (a.go, a.efi_name, a.pe_machine) == ("arm64", "BOOTAA64.EFI", 0xAA64)
    assert arches.by_pe_machine(0x6264).name == "loongarch64"
    assert arches.by_pe_machine(0x14C) is None


def test_arch_errors_name_every_spelling():
    try:
        arches.get("sparc64")
    except arches.ArchError as exc:
        msg = str(exc)
        assert "sparc64" in msg and "x86_64 (amd64, x64)" in msg and "loongarch64 (loong64)" in msg, msg
    else:
        raise AssertionError("sparc64 accepted")


def test_arch_select():
    assert [a.name for a in arches.select("all")] == list(arches.NAMES)
    assert [a.name for a in arches.select("arm64,x86_64,amd64")] == ["aarch64", "x86_64"]
    assert [a.name for a in arches.select(["riscv64", "all"])][0] == "riscv64"
    try:
        arches.select(" , ")
    except arches.ArchError:
        pass
    else:
        raise AssertionError("empty selection accepted")


def test_merge_later_text_wins_and_quotes_stay_in_their_text():
    got = cmdline.merge('cloudboot.menu=0 a="open', "cloudboot.menu=1 b")
    assert got == {"cloudboot.menu": "1", "a": "open", "b": "1"}, got


def test_check_keys():
    good, bad, unknown = cmdline.check(cmdline.parse(
        "console=ttyS0 cloudboot.menu=yes cloudboot.menu.timeout=1m30s cloudboot.bogus cloudboot.repl "
        "cloudboot.wait=250 cloudboot.disk=LABEL= cloudboot.lldp.wait=-1s"))
    assert good == {"console": "ttyS0", "cloudboot.menu.timeout": "1m30s", "cloudboot.bogus": "1",
                    "cloudboot.repl": "1", "cloudboot.wait": "250", "cloudboot.lldp.wait": "-1s"}, good
    assert bad == ["bad kernel command line value cloudboot.disk='LABEL=': LABEL= needs a value",
                   "bad kernel command line value cloudboot.menu='yes': want one of '0', '1'"], bad
    assert unknown == ["unknown key cloudboot.bogus='1' ignored"], unknown
    for token, why in (("cloudboot.wait=1s", "whole number of milliseconds"), ("cloudboot.menu.timeout=-1s",
                       "cannot be negative"), ("cloudboot.disk=vda", "<pool>/<dataset>"),
                       ("cloudboot.disk.kernel=boot/vmlinuz", "absolute path"), ("cloudboot.plan=", "empty value")):
        _, bad, _ = cmdline.check(cmdline.parse(token))
        assert len(bad) == 1 and why in bad[0], (token, bad)
    for spec in ("/dev/vda2", "UUID=0123", "PARTLABEL=root", "tank/ROOT/debian"):
        assert cmdline.check({"cloudboot.disk": spec})[1] == [], spec
