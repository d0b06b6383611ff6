"""cloudboot.init.cmdline: the original's tokenizer semantics (its own test cases, REFERENCE.md §1), values
checked up front, durations; the same grammar as the firmware's (bootplan.cmdline)."""

from __future__ import annotations

import pytest

from bootplan import cmdline as portable
from cloudboot.init import cmdline
from cloudboot.init.errors import InitError
from tests.portable.test_cmdline_arches import VECTORS


@pytest.mark.parametrize("text, want", VECTORS)
def test_init_reads_the_reference_vectors_as_the_firmware_does(text: str, want: dict[str, str]) -> None:
    """REFERENCE §1's vectors: init's parse is the portable one (the firmware runs the same in QEMU)."""
    assert cmdline.parse(text) == portable.parse(text) == want
    assert cmdline.split(text) == portable.split(text)


@pytest.mark.parametrize("text, tokens", [
    # the original's helpers_test.go cases
    ('console=ttyS0  ip="dhcp,ipv4" quiet ' + "\tloglevel=3\n",
     ["console=ttyS0", "ip=dhcp,ipv4", "quiet", "loglevel=3"]),
    ('x "y z"', ["x", "y z"]),
    ("", []),
    # quotes anywhere group and vanish; an unterminated quote runs to the end
    ('cloudboot.cmdline="console=ttyS0 panic=-1" next', ["cloudboot.cmdline=console=ttyS0 panic=-1", "next"]),
    ('a"b c"d', ["ab cd"]),
    ('a "b c', ["a", "b c"]),
    ('"" a', ["a"]),
    ("a\r b", ["a\r", "b"]),  # only space, tab and newline separate (as in the original)
])
def test_split(text: str, tokens: list[str]) -> None:
    assert cmdline.split(text) == tokens


def test_parse_like_the_original() -> None:
    assert cmdline.parse('a=1 b "c=d e" flag') == {"a": "1", "b": "1", "c": "d e", "flag": "1"}
    # first '=' splits; later duplicates overwrite; an empty value stays empty
    assert cmdline.parse("k=a=b k2= k=c") == {"k": "c", "k2": ""}
    assert cmdline.parse("root=UUID=1234-abcd ro")["root"] == "UUID=1234-abcd"


def test_read_file(tmp_path) -> None:
    p = tmp_path / "cmdline"
    p.write_text('console=ttyS0 cloudboot.disk=LABEL=boot cloudboot.cmdline="quiet splash"\n')
    assert cmdline.read(str(p)) == {"console": "ttyS0", "cloudboot.disk": "LABEL=boot",
                                    "cloudboot.cmdline": "quiet splash"}


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("1m30s", 90), ("250ms", 0.25), ("10", 10), ("1.5s", 1.5),
                                           ("1h", 3600), ("0", 0)])
def test_duration(text: str, seconds: float) -> None:
    assert cmdline.duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "1m30", "five", "1..2s"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(ValueError):
        cmdline.duration(text)


def test_check_accepts_good_values_and_warns_on_unknown_keys() -> None:
    cmd = cmdline.parse("cloudboot.exit=kexec cloudboot.disk=LABEL=boot cloudboot.disk.fs=xfs "
                        "cloudboot.disk.kernel=/boot/vmlinuz cloudboot.disk.wait=2s cloudboot.menu.timeout=1m "
                        "cloudboot.cosign=warn cloudboot.bogus=1 console=ttyS0 quiet")
    assert cmdline.check(cmd) == ["unknown key cloudboot.bogus='1' ignored"]
    # the firmware's own keys are known (a CloudBootCmdline that carries them reaches init too)
    assert cmdline.check(cmdline.parse("cloudboot.repl cloudboot.wait=0 cloudboot.lldp.wait=-1s")) == []
    for spec in ("/dev/vda2", "UUID=0123", "PARTLABEL=root", "PARTUUID=ab-cd", "tank/ROOT/debian"):
        assert cmdline.check({"cloudboot.disk": spec}) == []


@pytest.mark.parametrize("token, words", [
    ("cloudboot.exit=bogus", ["cloudboot.exit='bogus'", "'kexec', 'reboot'"]),
    ("cloudboot.exit", ["cloudboot.exit='1'"]),  # a bare word is "1", which is no sink
    ("cloudboot.disk=vda", ["cloudboot.disk='vda'", "LABEL="]),
    ("cloudboot.disk=LABEL=", ["LABEL= needs a value"]),
    ("cloudboot.disk.fs=ntfs", ["ntfs", "'ext4', 'xfs', 'btrfs', 'zfs'"]),
    ("cloudboot.disk.kernel=boot/vmlinuz", ["absolute path"]),
    ("cloudboot.disk.wait=soon", ["not a duration"]),
    ("cloudboot.disk.wait=-5s", ["cannot be negative"]),
    ("cloudboot.menu.timeout=-1", ["cannot be negative"]),
    ("cloudboot.wait=1s", ["whole number of milliseconds"]),
    ("cloudboot.menu=yes", ["'0', '1'"]),
    ("cloudboot.plan=", ["empty value"]),
    ("cloudboot.keymap=de", ["'fr-mac'"]),
])
def test_check_refuses_bad_values(token: str, words: list[str]) -> None:
    with pytest.raises(InitError) as info:
        cmdline.check(cmdline.parse(f"console=ttyS0 {token}"))
    msg = str(info.value)
    assert msg.startswith("bad kernel command line value ")
    for w in words:
        assert w in msg, msg
