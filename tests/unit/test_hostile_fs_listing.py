"""`fs ls -l` and `fs ls --json` of a 10,000-entry directory read the directory once on every filesystem (ext4
htree, XFS node directory, btrfs, ZFS fat ZAP on zfs-fuse's lzjb and OpenZFS's lz4 pools), instead of looking
every name up again (quadratic: 160 s on ext4). Counted, not timed: every directory entry a reader yields is
counted, and the run stops at three passes' worth (bench/bench_fs_listing.py times them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudboot.cli import main
from diskfs.btrfs import Btrfs
from diskfs.ext4 import Ext4
from diskfs.xfs import Xfs
from diskfs.zfs import Zfs

ENTRIES = 10_000
READERS = {"ext4-many.img": Ext4, "xfs-many.img": Xfs, "btrfs-many.img": Btrfs, "zfs-single.img@cbzfssingle/many": Zfs,
           "openzfs.img@cbopenzfs/many": Zfs}
IMAGES = [pytest.param(name, marks=[pytest.mark.openzfs] if name.startswith("openzfs") else []) for name in READERS]


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("how", ["-l", "--json"])
def test_a_long_listing_reads_the_directory_once(image: str, how: str, testdata: str, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cls = READERS[image]
    plain = cls.entries
    seen = [0]

    def counted(self, inode):
        for item in plain(self, inode):
            seen[0] += 1
            if seen[0] > 3 * ENTRIES:
                raise AssertionError("more than three passes over the directory: a lookup per entry")
            yield item

    monkeypatch.setattr(cls, "entries", counted)
    code = main(["fs", "ls", how, str(Path(testdata) / image), "/many"])
    out, err = capsys.readouterr()
    assert code == 0, err
    if how == "--json":
        entries = json.loads(out)
        assert len(entries) == ENTRIES and entries[0]["name"] == "entry-00000" and entries[0]["size"] == 2
    else:
        lines = out.splitlines()
        assert len(lines) == ENTRIES and lines[-1].endswith(" entry-09999") and lines[-1].startswith("-rw-")
    assert ENTRIES <= seen[0] <= 2 * ENTRIES + 100, seen[0]
