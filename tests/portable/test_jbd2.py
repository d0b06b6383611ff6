"""diskfs.jbd2 on journals laid out by hand as the jbd2 format specifies: committed transactions replayed,
revokes honoured, an uncommitted tail ignored, escaped blocks restored, the incompat allow-list by name.
The same code on real dirty ext4 images (written by debugfs, checksums v3) is in test_ext4. Plain asserts:
CPython and the MicroPython unix port."""

import struct

import fstree

from diskfs import jbd2
from diskfs.errors import Corrupt, Unsupported

BS = 1024
FS_BLOCKS = 20  # the "filesystem": device blocks 0..19; the journal follows
JOURNAL = 20  # device block of journal block 0


def _header(kind, seq):
    return struct.pack(">III", jbd2.MAGIC, kind, seq)


def _block(data):
    return data + bytes(BS - len(data))


def _superblock(start=1, seq=10, incompat=jbd2.INC_REVOKE, maxlen=16):
    sb = _header(jbd2.SUPERBLOCK_V2, 0) + struct.pack(">IIIII", BS, maxlen, 1, seq, start)
    sb += struct.pack(">iIII", 0, 0, incompat, 0) + b"U" * 16  # errno, compat, incompat, ro_compat, uuid
    return _block(sb)


def _descriptor(seq, tags):
    """tags: [(fs block, flags)]; the journal UUID follows a tag without TAG_SAME_UUID."""
    out = _header(jbd2.DESCRIPTOR, seq)
    for fsb, flags in tags:
        out += struct.pack(">IHH", fsb, 0, flags) + (b"" if flags & jbd2.TAG_SAME_UUID else b"U" * 16)
    return _block(out)


def _journal(**sb):
    same, last = jbd2.TAG_SAME_UUID, jbd2.TAG_LAST
    return [
        _superblock(**sb),
        _descriptor(10, [(5, 0), (6, same | last | jbd2.TAG_ESCAPED)]),  # transaction 10
        _block(b"A" * BS),
        _block(bytes(4) + b"B" * (BS - 4)),  # block 6 began with the magic: escaped
        _block(_header(jbd2.COMMIT, 10)),
        _descriptor(11, [(7, same | last)]),  # transaction 11: block 7, and revokes block 5
        _block(b"C" * BS),
        _block(_header(jbd2.REVOKE, 11) + struct.pack(">II", 20, 5)),
        _block(_header(jbd2.COMMIT, 11)),
        _descriptor(12, [(8, same | last)]),  # transaction 12 never committed
        _block(b"D" * BS),
    ]


def _device(blocks):
    raw = bytes(FS_BLOCKS * BS) + b"".join(blocks)
    return fstree.memdev(raw + bytes((JOURNAL + 16) * BS - len(raw)), "journaled")


def _read(dev, offset, length):
    buf = bytearray(length)
    dev.readinto(offset, buf)
    return bytes(buf)


def _open(dev, verify=True):
    return jbd2.Journal(dev.name, dev.read, lambda n: (JOURNAL + n) * BS, BS, 16 * BS, verify)


def test_committed_transactions_replay_revokes_and_escapes():
    dev = _device(_journal())
    j = _open(dev)
    blocks = j.replay(FS_BLOCKS)
    assert blocks == {6: ((JOURNAL + 3) * BS, True), 7: ((JOURNAL + 6) * BS, False)}, blocks
    assert j.transactions == 2
    seen = jbd2.Overlay(dev, BS, blocks)
    assert _read(seen, 6 * BS, BS) == struct.pack(">I", jbd2.MAGIC) + b"B" * (BS - 4)
    assert _read(seen, 6 * BS - 2, 4) == bytes(2) + struct.pack(">I", jbd2.MAGIC)[:2]  # untouched, journaled
    assert _read(seen, 8 * BS - 2, 4) == b"CC" + bytes(2)  # journaled, then untouched
    assert _read(seen, 5 * BS, BS) == bytes(BS)  # revoked by transaction 11
    assert _read(seen, 8 * BS, BS) == bytes(BS)  # transaction 12 did not commit


def test_an_empty_journal_replays_nothing():
    j = _open(_device(_journal(start=0)))
    assert j.replay(FS_BLOCKS) == {} and j.transactions == 0


def test_incompat_allow_list_names_the_feature():
    exc = fstree.raises(Unsupported, _open(_device(_journal(incompat=jbd2.INC_FAST_COMMIT))).replay, FS_BLOCKS)
    assert "journaled: jbd2 incompat 0x20 (fast_commit) unsupported: " in str(exc) and exc.feature == "fast_commit"
    exc = fstree.raises(Unsupported, _open(_device(_journal(incompat=0x41))).replay, FS_BLOCKS)
    assert str(exc) == "journaled: jbd2 incompat 0x40 unknown to this reader", exc
    for bit in jbd2.INCOMPAT:
        name, readable, why = jbd2.INCOMPAT[bit]
        assert name and why, bit


def test_bad_journals_are_corrupt():
    blocks = _journal()
    blocks[0] = _block(b"not a journal")
    exc = fstree.raises(Corrupt, _open(_device(blocks)).replay, FS_BLOCKS)
    assert "jbd2 superblock" in str(exc) and "bad magic" in str(exc), exc
    exc = fstree.raises(Corrupt, _open(_device(_journal())).replay, 7)  # block 7 is past a 7-block filesystem
    assert "journaled block 7 is outside the filesystem" in str(exc), exc
    blocks = _journal()
    blocks[7] = _block(_header(jbd2.REVOKE, 11) + struct.pack(">I", 4000))
    exc = fstree.raises(Corrupt, _open(_device(blocks)).replay, FS_BLOCKS)
    assert "jbd2 revoke block" in str(exc) and "4000 bytes of records" in str(exc), exc
    blocks = _journal()
    blocks[4] = _block(_header(9, 10))
    exc = fstree.raises(Corrupt, _open(_device(blocks)).replay, FS_BLOCKS)
    assert "block type 9 inside the log" in str(exc), exc
