"""Names that are not UTF-8 through `cloud-boot fs` on every filesystem (images of tests/portable/images.py NAMES,
made by mkfs.ext4 -d, mkfs.xfs -p, mkfs.btrfs --rootdir and zfs-fuse): listed with the byte escaped as `\\xff`,
and reached by the same bytes given raw on the command line (btrfs refused to list such a directory and a
traceback met such a path; ZFS replaced the bytes with U+FFFD, so such a name could not be reached)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.hostile import cli, ok, refused


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "zfs"])
def test_names_that_are_not_utf8_are_listed_escaped_and_reachable(fstype: str, testdata: str) -> None:
    image = str(Path(testdata) / f"{fstype}-names.img")
    listing = ok(cli("fs", "ls", "-l", image, "/"))
    names = [line.split()[-1] for line in listing.splitlines()]
    assert [n for n in names if n != "lost+found"] == ["bad\\xff", "caf\u00e9\\xe9", "dir\\xfe", "plain"], listing
    inner = ok(cli("fs", "ls", "-l", image, "/dir\udcfe"))
    assert inner.splitlines()[-1].endswith(" up\\xfd -> ../bad\\xff"), inner
    assert "\udc80" not in inner and "f\\x80" in inner, inner
    assert ok(cli("fs", "cat", image, "/caf\u00e9\udce9")) == "mixed\n"
    assert ok(cli("fs", "cat", image, "/dir\udcfe/up\udcfd")) == "bad\n"  # through the link's raw target
    entries = json.loads(ok(cli("fs", "ls", "--json", image, "/dir\udcfe")))
    assert [e["name"] for e in entries] == ["f\udc80", "up\udcfd"] and entries[1]["target"] == "../bad\udcff"
    refused(cli("fs", "cat", image, "/bad\udcfe"), "/bad\\xfe: no such file or directory")
