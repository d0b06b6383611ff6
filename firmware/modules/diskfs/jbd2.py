"""jbd2, the journal of ext3/ext4, replayed in memory (read-only).

A filesystem whose `needs_recovery` flag is set was not unmounted cleanly: committed transactions in its
journal may not have reached their home blocks. `Journal.replay` walks the log from its start as the kernel's
recovery does (transactions in sequence until one is not committed: a stale descriptor, a torn or missing
commit), honours revoke records (a block revoked by a transaction is not replayed from that one or older
ones), checks v2/v3 checksums, and returns where each block's newest committed copy is; `Overlay` is the
device as the kernel would see it after mounting. Nothing is written.

Journal incompat features are an explicit allow-list with the reason for each (GRUB's way, as ext4's own).
"""

import struct

from diskfs.checksum import crc32c_raw
from diskfs.errors import check_incompat, corrupt

MAGIC = 0xC03B3998
# block types: the second word of every journal block header (magic, type, sequence)
DESCRIPTOR, COMMIT, SUPERBLOCK_V1, SUPERBLOCK_V2, REVOKE = 1, 2, 3, 4, 5
# descriptor tag flags
TAG_ESCAPED = 0x1  # the block's first 4 bytes were the magic; the journal copy has them zeroed
TAG_SAME_UUID = 0x2  # no 16-byte journal UUID follows the tag
TAG_LAST = 0x8  # the descriptor's last tag
INC_REVOKE, INC_64BIT, INC_ASYNC_COMMIT, INC_CSUM_V2, INC_CSUM_V3, INC_FAST_COMMIT = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
# incompat bit -> (name, readable?, why)
INCOMPAT = {
    INC_REVOKE: ("revoke", True, "revoke records are honoured: a revoked block is not replayed from older "
                                 "transactions"),
    INC_64BIT: ("64bit", True, "tags and revoke records carry the high 32 bits of block numbers"),
    INC_ASYNC_COMMIT: ("async_commit", True, "the commit block may be on disk before the blocks it commits; "
                                             "replay reads the same log (the v1 commit crc32 is not checked)"),
    INC_CSUM_V2: ("csum_v2", True, "descriptor, revoke and commit checksums, 16-bit data checksums in tags"),
    INC_CSUM_V3: ("csum_v3", True, "the same checksums, 32-bit in 16-byte tags"),
    INC_FAST_COMMIT: ("fast_commit", False, "fast-commit blocks log ext4 operations, not blocks: replaying them "
                                            "is ext4's own logic"),
}
SB_BLOCK_SIZE, SB_FEATURES, SB_UUID, SB_CHECKSUM = 12, 0x24, 0x30, 0xFC  # journal superblock offsets
COMMIT_CHECKSUM = 16  # where a commit block's checksum is


def seq_ge(a, b):
    """jbd2 sequence comparison with wraparound: a >= b."""
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


class Journal:
    """An internal journal of `block_size` blocks: `locate(n)` gives the device offset of journal block n,
    `read(offset, length)` reads the device (the filesystem's bounded read, a bytearray); `size` is the
    journal inode's size in bytes. `name` (the device) heads every error."""

    def __init__(self, name, read, locate, block_size, size, verify=True):
        self.name, self.read, self.locate = name, read, locate
        self.bs, self.size, self.verify = block_size, size, verify
        self.transactions = 0  # committed transactions replayed

    def _block(self, n):
        return self.read(self.locate(n), self.bs)

    def _superblock(self):
        """False when the journal is empty (nothing left unapplied); else its geometry and features are set."""
        jsb = self._block(0)
        magic, btype = struct.unpack_from(">II", jsb, 0)
        if magic != MAGIC or btype not in (SUPERBLOCK_V1, SUPERBLOCK_V2):
            raise corrupt(self.name, "jbd2 superblock", self.locate(0), "bad magic or block type")
        jbs, self.maxlen, self.first, self.seq, self.start = struct.unpack_from(">IIIII", jsb, SB_BLOCK_SIZE)
        incompat = struct.unpack_from(">I", jsb, SB_FEATURES + 4)[0] if btype == SUPERBLOCK_V2 else 0
        if jbs != self.bs or self.maxlen * self.bs > self.size + self.bs or self.first < 1 or \
                self.first >= self.maxlen:
            raise corrupt(self.name, "jbd2 superblock", self.locate(0), "block size %d, %d blocks, first %d"
                          % (jbs, self.maxlen, self.first))
        if not self.start:
            return False
        check_incompat(self.name, "jbd2", incompat, INCOMPAT)
        self.csum3, self.is64 = bool(incompat & INC_CSUM_V3), bool(incompat & INC_64BIT)
        self.csum = bool(incompat & (INC_CSUM_V2 | INC_CSUM_V3))
        self.seed = crc32c_raw(0xFFFFFFFF, jsb[SB_UUID:SB_UUID + 16])
        if self.csum and self.verify:
            c = crc32c_raw(0xFFFFFFFF, jsb[:SB_CHECKSUM] + b"\0\0\0\0" + jsb[SB_CHECKSUM + 4:1024])
            if c != struct.unpack_from(">I", jsb, SB_CHECKSUM)[0]:
                raise corrupt(self.name, "jbd2 superblock", self.locate(0), "checksum mismatch")
        if self.csum3:
            self.tag_size = 16
        else:
            self.tag_size = (12 if self.is64 else 8) + (2 if self.csum else 0)
        self.tail = 4 if self.csum else 0  # descriptor and revoke blocks end in a checksum
        return True

    def _next(self, b):
        b += 1
        return self.first if b >= self.maxlen else b

    def _tail_ok(self, hdr):
        """A descriptor's or revoke block's own checksum (always true without checksums or verification)."""
        if not self.tail or not self.verify:
            return True
        return crc32c_raw(self.seed, hdr[:self.bs - 4] + b"\0\0\0\0") == struct.unpack_from(">I", hdr, self.bs - 4)[0]

    def _walk(self):
        """The committed transactions in log order: [(sequence, [(fs block, journal block, escaped, tag
        checksum)], [revoked fs blocks])]."""
        transactions = []
        block, seq, steps = self.start, self.seq, 0
        writes, revokes = [], []
        while True:
            hdr = self._block(block)
            magic, kind, hseq = struct.unpack_from(">III", hdr, 0)
            if magic != MAGIC or hseq != seq:
                break
            steps += 1
            if steps > self.maxlen:
                raise corrupt(self.name, "jbd2 journal", self.locate(block), "the log does not end")
            if kind == DESCRIPTOR:
                if not self._tail_ok(hdr):
                    break  # a stale descriptor: the log ends here
                tagged = len(writes)
                block = self._descriptor(hdr, block, writes)
                steps += len(writes) - tagged
                continue
            if kind == COMMIT:
                if self.tail and self.verify:
                    c = crc32c_raw(self.seed, hdr[:COMMIT_CHECKSUM] + b"\0\0\0\0" + hdr[COMMIT_CHECKSUM + 4:])
                    if struct.unpack_from(">I", hdr, COMMIT_CHECKSUM)[0] != c:
                        break  # a torn commit: this transaction did not happen
                transactions.append((seq, writes, revokes))
                writes, revokes = [], []
                seq = (seq + 1) & 0xFFFFFFFF
                block = self._next(block)
                continue
            if kind == REVOKE:
                if not self._tail_ok(hdr):
                    break
                self._revoke(hdr, block, revokes)
                block = self._next(block)
                continue
            raise corrupt(self.name, "jbd2 journal", self.locate(block), "block type %d inside the log" % kind)
        return transactions

    def _descriptor(self, hdr, block, writes):
        """Append the descriptor's (fs block, journal block, escaped, tag checksum); the block after its data."""
        pos = 12
        dblock = block
        while pos + self.tag_size <= self.bs - self.tail:
            if self.csum3:
                lo, flags, hi, tsum = struct.unpack_from(">IIII", hdr, pos)
            else:
                lo, tsum, flags = struct.unpack_from(">IHH", hdr, pos)
                hi = struct.unpack_from(">I", hdr, pos + 8)[0] if self.is64 else 0
            pos += self.tag_size
            if not flags & TAG_SAME_UUID:
                pos += 16  # the journal UUID
            dblock = self._next(dblock)
            writes.append((lo | (hi << 32) if self.is64 else lo, dblock, bool(flags & TAG_ESCAPED), tsum))
            if flags & TAG_LAST:
                break
        return self._next(dblock)

    def _revoke(self, hdr, block, revokes):
        count = struct.unpack_from(">I", hdr, 12)[0]  # bytes used, header included
        rsize = 8 if self.is64 else 4
        if count > self.bs - self.tail or count < 16:
            raise corrupt(self.name, "jbd2 revoke block", self.locate(block), "%d bytes of records" % count)
        for p in range(16, count - rsize + 1, rsize):
            revokes.append(struct.unpack_from(">Q" if self.is64 else ">I", hdr, p)[0])

    def replay(self, fs_blocks):
        """{fs block: (device offset of its newest committed copy, escaped)}: empty when there is nothing to
        replay. Sets `transactions`. Blocks beyond `fs_blocks` and data checksum mismatches are Corrupt."""
        if not self._superblock():
            return {}
        transactions = self._walk()
        revoked = {}  # block -> newest revoking transaction
        for tseq, _, rev in transactions:
            for b in rev:
                revoked[b] = tseq
        blocks = {}  # newest copy of each block wins
        for tseq, writes, _ in transactions:
            for fsb, jb, escaped, tsum in writes:
                r = revoked.get(fsb)
                if r is not None and seq_ge(r, tseq):
                    continue
                if fsb >= fs_blocks:
                    raise corrupt(self.name, "jbd2 descriptor", None, "journaled block %d is outside the filesystem"
                                  % fsb)
                if self.verify and self.csum:
                    c = crc32c_raw(crc32c_raw(self.seed, struct.pack(">I", tseq)), self._block(jb))
                    if (c if self.csum3 else c & 0xFFFF) != tsum:
                        raise corrupt(self.name, "jbd2 journal block %d (for block %d)" % (jb, fsb),
                                      self.locate(jb), "checksum mismatch in transaction %d" % tseq)
                blocks[fsb] = (self.locate(jb), escaped)
        self.transactions = len(transactions)
        return blocks


class Overlay:
    """The device as it will be once the journal is replayed: `blocks` (from Journal.replay) read from the
    journal, every other byte from `dev`."""

    def __init__(self, dev, block_size, blocks):
        self.parent, self.bs, self.blocks = dev, block_size, blocks
        self.sorted = sorted(blocks)
        self.name, self.size = dev.name, dev.size
        self.sector_size = getattr(dev, "sector_size", 512)

    def readinto(self, offset, buf):
        n = len(buf)
        first, last = offset // self.bs, (offset + n - 1) // self.bs
        lo, hi = 0, len(self.sorted)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.sorted[mid] < first:
                lo = mid + 1
            else:
                hi = mid
        if lo >= len(self.sorted) or self.sorted[lo] > last:
            self.parent.readinto(offset, buf)
            return
        mv = memoryview(buf)
        pos = 0
        while pos < n:
            blk, within = divmod(offset + pos, self.bs)
            take = min(n - pos, self.bs - within)
            got = self.blocks.get(blk)
            if got is None:
                # read up to the next journaled block in one go
                while lo < len(self.sorted) and self.sorted[lo] < blk:
                    lo += 1
                stop = n if lo >= len(self.sorted) else min(n, self.sorted[lo] * self.bs - offset)
                self.parent.readinto(offset + pos, mv[pos:stop])
                pos = stop
                continue
            src, escaped = got
            data = bytearray(self.bs)
            self.parent.readinto(src, data)
            if escaped:
                data[0:4] = struct.pack(">I", MAGIC)
            mv[pos:pos + take] = data[within:within + take]
            pos += take
