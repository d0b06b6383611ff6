"""Helpers for the portable filesystem tests (CPython and MicroPython): the test images, and a check that a
filesystem holds exactly a source tree (names, kinds, sizes, bytes by SHA-256, link targets, hard links),
against the manifest tests/portable/images.py wrote from the host tree."""

import binascii
import hashlib
import os

import diskfs
from diskfs.blockdev import FileDevice, MemoryDevice

S_IFMT, S_IFDIR, S_IFLNK = 0o170000, 0o040000, 0o120000
CHUNK = 1 << 20


def data(name=""):
    """A path under $CLOUDBOOT_TESTDATA (set by tests/conftest.py)."""
    root = os.getenv("CLOUDBOOT_TESTDATA")
    assert root, "CLOUDBOOT_TESTDATA is not set (tests/conftest.py sets it)"
    return root + "/" + name if name else root


def dev(name):
    return FileDevice(data(name))


def fs(name, **options):
    return diskfs.open(dev(name), **options)


def memory(name, size=None):
    """An image (or its first `size` bytes) in memory, as a bytearray, for corrupting."""
    with open(data(name), "rb") as f:
        return bytearray(f.read() if size is None else f.read(size))


def memdev(raw, name="corrupted"):
    return MemoryDevice(bytes(raw), name)


class Patched(FileDevice):
    """An image file with some bytes replaced, without copying it (MicroPython's GC scans big buffers)."""

    def __init__(self, name, label="corrupted"):
        FileDevice.__init__(self, data(name))
        self.name = label
        self.patches = []

    def byte(self, offset):
        b = bytearray(1)
        FileDevice.readinto(self, offset, b)
        return b[0]

    def flip(self, offset, mask=1):
        """XOR one byte with mask."""
        return self.put(offset, bytes([self.byte(offset) ^ mask]))

    def put(self, offset, data):
        self.patches.append((offset, bytes(data)))
        return self

    def readinto(self, offset, buf):
        FileDevice.readinto(self, offset, buf)
        end = offset + len(buf)
        for at, data in self.patches:
            if at < end and at + len(data) > offset:
                lo, hi = max(at, offset), min(at + len(data), end)
                buf[lo - offset:hi - offset] = data[lo - at:hi - at]


def manifest(tree):
    """{path: (kind, size, sha256 or target, link group)} of a host tree."""
    out = {}
    with open(data(tree + ".manifest"), "rb") as f:
        for line in f.read().decode().split("\n"):
            if not line:
                continue
            kind, path, size, digest, group = line.split("\t")
            out[path] = (kind, int(size), digest, group)
    return out


def digest(fsys, node):
    """SHA-256 of a file's bytes, read through readinto in 1 MiB chunks."""
    h = hashlib.sha256()
    buf = bytearray(min(CHUNK, node.size))
    pos = 0
    while pos < node.size:
        n = fsys.readinto_file(node, pos, buf)
        assert n == min(len(buf), node.size - pos), (node.number, pos, n)
        h.update(buf if n == len(buf) else buf[:n])
        pos += n
    return binascii.hexlify(h.digest()).decode()


def listing(fsys, top="/"):
    """{path: (kind, node)} of everything below `top`, walking entries (no path lookups)."""
    out = {}
    start = fsys.lookup(top)
    pending = [("" if top == "/" else top.rstrip("/"), start)]
    while pending:
        path, node = pending.pop()
        for name, ref in fsys.entries(node):
            child = fsys.node(ref)
            p = path + "/" + name
            kind = "d" if child.is_dir() else ("l" if child.is_symlink() else "f")
            out[p] = (kind, child)
            if kind == "d":
                pending.append((p, child))
    return out


def check_tree(fsys, tree, top="/", ignore=("/lost+found",), skip_digest=(), hardlinks=True):
    """Assert that the filesystem below `top` holds exactly the host tree `tree`."""
    want = manifest(tree)
    got = listing(fsys, top)
    prefix = "" if top == "/" else top.rstrip("/")
    got = {p[len(prefix):]: v for p, v in got.items() if p[len(prefix):] not in ignore
           and not any(p[len(prefix):].startswith(i + "/") for i in ignore)}
    want = {p: v for p, v in want.items() if p not in ignore and not any(p.startswith(i + "/") for i in ignore)}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, "missing %r, unexpected %r" % (missing[:10], extra[:10])
    groups = {}
    for path, (kind, size, dig, group) in want.items():
        gkind, node = got[path]
        assert gkind == kind, "%s: %s, want %s" % (path, gkind, kind)
        if kind == "f":
            assert node.size == size, "%s: size %d, want %d" % (path, node.size, size)
            if path not in skip_digest:
                assert digest(fsys, node) == dig, "%s: contents differ" % path
            if group and hardlinks:
                groups.setdefault(group, set()).add(fsys._key(node))
        elif kind == "l":
            assert fsys.readlink_inode(node) == dig, "%s: -> %r, want %r" % (path, fsys.readlink_inode(node), dig)
    for group, keys in groups.items():
        assert len(keys) == 1, "hard links of %s are different inodes: %r" % (group, keys)
    return len(want)


def raises(exc_type, fn, *args, **kw):
    """Call fn; assert it raises exc_type; return the exception (portable pytest.raises)."""
    try:
        fn(*args, **kw)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))
