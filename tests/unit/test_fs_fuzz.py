"""A mutation fuzzer per filesystem (ext4, XFS, btrfs, ZFS by zfs-fuse and by OpenZFS) and container (LUKS1, LUKS2 with
ext4 inside): bytes of the metadata blocks of images made by the real tools are flipped (hypothesis picks which),
then the image is opened, walked and its files read. Anything but the typed errors (FsError: Corrupt, Unsupported,
NotFound) is a bug, and so is a hang or an unbounded allocation.

Under `make test` each filesystem gets a short bounded run (derandomized under CI, the "ci" profile in
tests/conftest.py); `make fuzz` runs each for FUZZ_SECONDS (default 600). Crashes found become regression tests
in REGRESSIONS below.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "portable"))
import fstree  # noqa: E402

import diskfs  # noqa: E402
from diskfs.blockdev import FileDevice  # noqa: E402
from diskfs.errors import FsError  # noqa: E402

IMAGES = {"ext4": "ext4-4k.img", "xfs": "xfs-v5.img", "btrfs": "btrfs.img", "luks1": "luks1-xts-sha1.img",
          "luks2": "luks2-pbkdf2.img", "zfs": "zfs-single.img", "openzfs": "openzfs.img"}
#: How each image opens. LUKS: KDF costs bounded so that a mutated cost ends quickly (the limits are the defence).
_LUKS = {"passphrase": b"correct horse \xe2\x9c\x93",
         "luks_limits": {"max_iterations": 100000, "max_memory_kib": 65536, "max_time": 8}}
#: ZFS: the dataset with a child at its mountpoint; checksums off, or nearly every flip would stop there.
#: OpenZFS: the pool sits in partition 1 (PARTITION); the dataset with system attributes, lz4, embedded blocks.
OPTIONS = {"luks1": _LUKS, "luks2": _LUKS,
           "zfs": {"dataset": "ROOT/debian", "verify_data": False, "verify_metadata": False},
           "openzfs": {"dataset": "lz4", "verify_data": False, "verify_metadata": False}}
PARTITION = {"openzfs": 1}


def _open(kind: str, dev):
    """The image opened as the fuzzer's target (its partition, when the format sits in one)."""
    if kind in PARTITION:
        dev = [p for p in diskfs.partitions(dev) if p.number == PARTITION[kind]][0].device(dev)
    return diskfs.open(dev, **OPTIONS.get(kind, {}))


EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "0"))
HANG_SECONDS = 30
MAX_NODES = 3000
READ = 65536


class Recorder(FileDevice):
    """Notes every small read (metadata: superblocks, tree and directory blocks, inodes)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.reads: dict[int, int] = {}

    def readinto(self, offset, buf):
        super().readinto(offset, buf)
        if len(buf) <= 65536:
            self.reads[offset] = max(self.reads.get(offset, 0), len(buf))


def exercise(fs) -> int:
    """Walk everything (bounded), stat each entry, read links and the head and tail of each file."""
    seen = 0
    pending = [fs.root()]
    buf = bytearray(READ)
    while pending and seen < MAX_NODES:
        node = pending.pop()
        for _, ref in fs.entries(node):
            seen += 1
            if seen >= MAX_NODES:
                break
            child = fs.node(ref)
            if child.is_dir():
                pending.append(child)
            elif child.is_symlink():
                fs.readlink_inode(child)
            else:
                fs.readinto_file(child, 0, buf)
                if child.size > READ:
                    fs.readinto_file(child, child.size - 4096, memoryview(buf)[:4096])
    return seen


_META: dict[str, list[tuple[int, int]]] = {}


def metadata(kind: str) -> list[tuple[int, int]]:
    """(offset, length) of the blocks a clean traversal reads as metadata, sorted."""
    if kind not in _META:
        rec = Recorder(fstree.data(IMAGES[kind]))
        exercise(_open(kind, rec))
        rec.close()
        _META[kind] = sorted(rec.reads.items())
    return _META[kind]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {HANG_SECONDS} s: a loop?")


@contextlib.contextmanager
def bounded(expected: type[BaseException] | tuple[type[BaseException], ...] = FsError):
    """The fuzzers' discipline around one mutated input: `expected` (the parser's typed errors; FsError for the
    filesystems) is the expected way out, anything else propagates (a bug), and HANG_SECONDS without an answer
    is a Hang."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    except expected:
        pass
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fuzz(run, strategy=None) -> None:
    """`run(example)` on EXAMPLES hypothesis examples of `strategy` (default FLIPS), then (`make fuzz`) on new
    ones until FUZZ_SECONDS pass."""
    runs = [0]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy if strategy is not None else FLIPS)
    def prop(flips):
        runs[0] += 1
        run(flips)

    started = time.monotonic()
    prop()
    stop = started + FUZZ_SECONDS
    while time.monotonic() < stop:
        prop()
    print(f"fuzz: {runs[0]} examples in {time.monotonic() - started:.0f} s")  # `make fuzz` shows it (pytest -s)


def run_mutated(kind: str, flips: list[tuple[int, int, int]]) -> None:
    """Open and exercise the image with the flips applied; only FsError may come out."""
    meta = metadata(kind)
    dev = fstree.Patched(IMAGES[kind], "fuzzed-" + kind)
    for index, where, mask in flips:
        offset, length = meta[index % len(meta)]
        dev.flip(offset + where % length, mask)
    try:
        with bounded():
            exercise(_open(kind, dev))
    finally:
        dev.close()


FLIPS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16), st.integers(1, 255)),
                 min_size=1, max_size=6)


#: Each kind as a test parameter; the OpenZFS pool is built only when asked (tests/portable/openzfs.py).
KINDS = [pytest.param(k, marks=[pytest.mark.openzfs] if k == "openzfs" else []) for k in sorted(IMAGES)]


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_metadata(kind: str) -> None:
    fuzz(lambda flips: run_mutated(kind, flips))


# Crashes the fuzzer found, kept as regression tests: (filesystem, [(metadata block index, offset, xor mask)]).
REGRESSIONS: list[tuple[str, list[tuple[int, int, int]]]] = [
]


def test_fuzz_regressions() -> None:
    for kind, flips in REGRESSIONS:
        run_mutated(kind, flips)


@pytest.mark.parametrize("kind", KINDS)
def test_first_metadata_block_smashed(kind: str) -> None:
    """The first metadata block (the superblock region) smashed outright."""
    run_mutated(kind, [(0, i, 0xFF) for i in range(0, 4096, 61)])
