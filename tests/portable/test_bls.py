"""BLS entries and version ordering: plain asserts, runs on CPython (pytest) and the MicroPython unix port."""

from bootplan import bls
from bootplan.version import compare, newest_first


def test_version_compare():
    assert compare("6.12.117+deb13-amd64", "6.1.0-50-amd64") == 1
    assert compare("6.1.0-50-amd64", "6.1.0-9-amd64") == 1
    assert compare("6.2~rc1", "6.2") == -1
    assert compare("6.2", "6.2") == 0
    assert compare("6.2.1", "6.2") == 1
    assert compare("0-rescue-abc", "6.1") == -1
    assert newest_first(["5.10", "6.12", "6.1", "6.12~rc3"]) == ["6.12", "6.12~rc3", "6.1", "5.10"]


def test_parse_entry():
    e = bls.parse("fedora-6.8.conf", "title Fedora\nversion 6.8.5\nlinux /vmlinuz-6.8.5\n"
                  "initrd /initramfs-6.8.5.img\ninitrd /ucode.img\noptions root=UUID=x ro\noptions quiet\n# c\n")
    assert (e.name, e.title, e.version, e.linux) == ("fedora-6.8", "Fedora", "6.8.5", "/vmlinuz-6.8.5")
    assert e.initrd == ["/initramfs-6.8.5.img", "/ucode.img"]
    assert e.cmdline == "root=UUID=x ro quiet"


def test_entry_without_kernel_is_refused():
    try:
        bls.parse("broken.conf", "title nothing\n")
    except bls.BlsError as exc:
        assert "broken.conf" in str(exc)
    else:
        raise AssertionError("no error")


def test_order_newest_first_and_sort_key():
    a = bls.parse("a-6.1.conf", "linux /a\nversion 6.1\n")
    b = bls.parse("a-6.12.conf", "linux /b\nversion 6.12\n")
    rescue = bls.parse("a-0-rescue.conf", "linux /r\n")
    assert [e.name for e in bls.order([a, rescue, b])] == ["a-6.12", "a-6.1", "a-0-rescue"]
    k1 = bls.parse("z.conf", "linux /z\nsort-key fedora\nversion 6.1\n")
    k2 = bls.parse("y.conf", "linux /y\nsort-key fedora\nversion 6.9\n")
    assert [e.name for e in bls.order([a, k1, k2])] == ["y", "z", "a-6.1"]
