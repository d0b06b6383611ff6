"""What every filesystem reader shares: the public API (GRUB's small vtable, in Python), path resolution with
symlinks and a loop limit, file objects, walk, and reading a file's runs into a caller's buffer.

A reader subclasses FsBase and provides:
  root() -> inode; node(ref) -> inode; entries(dir_inode) -> iterator of (name, ref);
  child(dir_inode, name) -> ref or None (a faster lookup where the format allows; default scans entries);
  runs(inode, offset, length) -> iterator of (length, source) covering the range in order, where source is
    a device byte offset (int), None (a hole: zeros) or a bytes-like object holding the data;
  readlink_inode(inode) -> str.
Inodes have number, mode, size, nlink, uid, gid, mtime and is_dir()/is_symlink()/is_file().
"""

from diskfs.errors import Corrupt, NotFound, corrupt

MAX_SYMLINKS = 40  # as Linux's path walk
MAX_PATH = 4096
MAX_DEPTH = 4096  # directories below the top in walk()
CACHE_BLOCKS = 64  # metadata blocks a reader keeps (ext4, XFS)
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000
_ZEROS = None


def _utf8_len(raw, i):
    """The length of the well-formed UTF-8 sequence at raw[i] (as CPython's decoder judges it), else 0."""
    b = raw[i]
    if b < 0x80:
        return 1
    if 0xC2 <= b <= 0xDF:
        size, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= b <= 0xEF:
        size, lo, hi = 3, 0xA0 if b == 0xE0 else 0x80, 0x9F if b == 0xED else 0xBF  # no overlongs, surrogates
    elif 0xF0 <= b <= 0xF4:
        size, lo, hi = 4, 0x90 if b == 0xF0 else 0x80, 0x8F if b == 0xF4 else 0xBF
    else:
        return 0
    if i + size > len(raw) or not lo <= raw[i + 1] <= hi:
        return 0
    for j in range(i + 2, i + size):
        if not 0x80 <= raw[j] <= 0xBF:
            return 0
    return size


def name_text(raw):
    """A name (or link target, label) from disk as text, the one convention of every reader: UTF-8, and each
    byte that is not part of well-formed UTF-8 as a lone surrogate U+DC80..U+DCFF, as CPython's surrogateescape
    decodes it (so a name given on a command line finds it; the host escapes it as `\\xff` for people).
    Checked here byte by byte: MicroPython's decoder lets overlong and surrogate sequences through."""
    raw = bytes(raw)
    try:
        text = raw.decode()
        if len(text) == len(raw):  # ASCII: the common case
            return text
    except UnicodeError:
        pass
    out = []
    i = start = 0
    while i < len(raw):
        size = _utf8_len(raw, i)
        if size:
            i += size
            continue
        out.append(raw[start:i].decode())
        out.append(chr(0xDC00 + raw[i]))
        i += 1
        start = i
    out.append(raw[start:].decode())
    return "".join(out)


def name_bytes(name):
    """The bytes on disk of a name from name_text() (the inverse), or None when no name on disk reads so."""
    try:
        raw = name.encode()
        if b"\xed" not in raw:  # MicroPython encodes a lone surrogate as ED xx xx instead of refusing it
            return raw
    except UnicodeError:  # CPython: a lone surrogate
        pass
    out = bytearray()
    for c in name:
        n = ord(c)
        if 0xDC80 <= n <= 0xDCFF:
            out.append(n - 0xDC00)
        elif 0xD800 <= n <= 0xDFFF:
            return None
        else:
            out += c.encode()
    return bytes(out)


def zero_fill(mv, start, end):
    """Write zeros into mv[start:end] in bounded chunks (buffers from the firmware are not zeroed)."""
    global _ZEROS
    if _ZEROS is None:
        _ZEROS = bytes(65536)
    while start < end:
        n = min(end - start, 65536)
        mv[start:start + n] = _ZEROS[:n] if n < 65536 else _ZEROS
        start += n


class InodeBase:
    """Fields common to the readers' inodes."""

    number = 0
    mode = 0
    size = 0
    nlink = 1
    uid = 0
    gid = 0
    mtime = 0

    def is_dir(self):
        return self.mode & S_IFMT == S_IFDIR

    def is_symlink(self):
        return self.mode & S_IFMT == S_IFLNK

    def is_file(self):
        return self.mode & S_IFMT == S_IFREG


class Stat:
    """What stat() returns: st_mode, st_ino, st_nlink, st_uid, st_gid, st_size, st_mtime (seconds)."""

    def __init__(self, node):
        self.st_mode, self.st_ino, self.st_nlink = node.mode, node.number, node.nlink
        self.st_uid, self.st_gid, self.st_size, self.st_mtime = node.uid, node.gid, node.size, node.mtime

    def __repr__(self):
        return "Stat(mode=0o%o, ino=%d, nlink=%d, uid=%d, gid=%d, size=%d, mtime=%d)" % (
            self.st_mode, self.st_ino, self.st_nlink, self.st_uid, self.st_gid, self.st_size, self.st_mtime)


class File:
    """A read-only file object over a filesystem inode: read, readinto, seek, tell, close; a context manager."""

    def __init__(self, fs, inode, path):
        self.fs, self.inode, self.path, self.pos = fs, inode, path, 0
        self.name = path

    @property
    def size(self):
        return self.inode.size

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buf) -> int:
        """Fill the start of buf from the current position; the number of bytes read (0 at the end)."""
        n = self.fs.readinto_file(self.inode, self.pos, buf) if self.pos < self.inode.size else 0
        self.pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        left = max(0, self.inode.size - self.pos)
        size = left if size is None or size < 0 else min(size, left)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf) if n == size else bytes(buf[:n])

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence not in (0, 1, 2):
            raise ValueError("whence must be 0, 1 or 2")
        base = (0, self.pos, self.inode.size)[whence]
        if base + offset < 0:
            raise ValueError("%s: seek to a negative position" % self.path)
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class FsBase:
    """The shared half of every reader (see the module docstring for what a reader provides)."""

    TYPE = "?"
    label = ""
    uuid = bytes(16)

    # ---- reading the device (for readers) ----
    def _raw(self, offset, length, what=None):
        """`length` bytes of the device at `offset`, a bytearray; Corrupt naming `what` (default "<type>
        read") when they run past its end."""
        if offset < 0 or offset + length > self.dev.size:
            raise corrupt(self.dev.name, what or self.TYPE + " read", offset,
                          "%d bytes past the end of the %d-byte device" % (length, self.dev.size))
        buf = bytearray(length)
        self.dev.readinto(offset, buf)
        return buf

    def _cache_clear(self):
        self._cache, self._cache_order = {}, []

    def _cache_put(self, key, data):
        """Keep a metadata block for later `self._cache.get(key)`; the oldest of CACHE_BLOCKS goes."""
        if len(self._cache_order) >= CACHE_BLOCKS:
            self._cache.pop(self._cache_order.pop(0), None)
        self._cache[key] = data
        self._cache_order.append(key)

    # ---- what readers may override ----
    def child(self, inode, name):
        """The ref of `name` in directory `inode`, or None."""
        for n, ref in self.entries(inode):
            if n == name:
                return ref
        return None

    def readinto_file(self, inode, offset: int, buf) -> int:
        """Fill buf with the file's bytes from `offset` (holes as zeros); the count, short at the end."""
        end = min(offset + len(buf), inode.size)
        if offset >= end:
            return 0
        mv = memoryview(buf)
        pos = offset
        for length, src in self.runs(inode, offset, end - offset):
            if length <= 0 or pos + length > end:
                raise Corrupt("%s: inode %d: block map gave a run of %d bytes at file offset %d"
                              % (self.dev.name, inode.number, length, pos), "block map")
            a, b = pos - offset, pos - offset + length
            if src is None:
                zero_fill(mv, a, b)
            elif isinstance(src, int):
                self.dev.readinto(src, mv[a:b])
            else:
                mv[a:b] = src[:length]
            pos += length
        if pos != end:
            raise Corrupt("%s: inode %d: block map covered %d of %d bytes" % (self.dev.name, inode.number,
                                                                               pos - offset, end - offset),
                          "block map")
        return end - offset

    # ---- the public API ----
    @property
    def uuid_str(self) -> str:
        from diskfs.formats import uuid_text

        return uuid_text(self.uuid)

    def lookup(self, path: str, follow: bool = True):
        """The inode at `path` (symlinks followed, also in the last component when `follow`)."""
        if len(path) > MAX_PATH:
            raise NotFound("%s: path of %d bytes is longer than %d" % (self.dev.name, len(path), MAX_PATH), path)
        parts = [p for p in path.split("/") if p]
        parts.reverse()  # a stack: the next component is parts[-1]
        stack = [self.root()]
        hops = 0
        while parts:
            name = parts.pop()
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            cur = stack[-1]
            if not cur.is_dir():
                raise NotFound("%s: %s: not a directory (at %r)" % (self.dev.name, path, name), path)
            ref = self.child(cur, name)
            if ref is None:
                raise NotFound("%s: %s: no such file or directory" % (self.dev.name, path), path)
            node = self.node(ref)
            if node.is_symlink() and (parts or follow):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise NotFound("%s: %s: too many levels of symbolic links" % (self.dev.name, path), path)
                target = self.readlink_inode(node)
                if target.startswith("/"):
                    stack = [stack[0]]
                more = [p for p in target.split("/") if p]
                more.reverse()
                parts.extend(more)
                if len(parts) > MAX_PATH:
                    raise NotFound("%s: %s: symbolic links expand past %d components" % (self.dev.name, path,
                                                                                         MAX_PATH), path)
                continue
            stack.append(node)
        return stack[-1]

    def open(self, path: str) -> File:
        """A file object for reading `path` (following symlinks)."""
        node = self.lookup(path)
        if node.is_dir():
            raise NotFound("%s: %s is a directory" % (self.dev.name, path), path)
        return File(self, node, path)

    def stat(self, path: str, follow: bool = False) -> Stat:
        """Stat of `path` (the link itself unless `follow`)."""
        return Stat(self.lookup(path, follow=follow))

    def listdir(self, path: str = "/") -> list:
        """Sorted names in a directory (without . and ..)."""
        node = self.lookup(path)
        if not node.is_dir():
            raise NotFound("%s: %s: not a directory" % (self.dev.name, path), path)
        return sorted(n for n, _ in self.entries(node))

    def children(self, path: str = "/") -> list:
        """(name, inode) of each entry of a directory, sorted by name (entries not followed): one pass over the
        directory, never a lookup per name (that made listing 10,000 entries quadratic)."""
        node = self.lookup(path)
        if not node.is_dir():
            raise NotFound("%s: %s: not a directory" % (self.dev.name, path), path)
        pairs = [(n, self.node(ref)) for n, ref in self.entries(node)]
        pairs.sort(key=lambda p: p[0])
        return pairs

    def scandir(self, path: str = "/") -> list:
        """Sorted (name, Stat) pairs of a directory (entries not followed)."""
        return [(n, Stat(node)) for n, node in self.children(path)]

    def walk(self, top: str = "/"):
        """(directory, [subdirectories], [other names]) for `top` and every directory below it, top-down.

        Symlinks are not followed; a directory reached twice (a corrupt loop) is Corrupt."""
        start = self.lookup(top)
        top = "/" + "/".join(p for p in top.split("/") if p)
        pending = [(top, start, 0)]
        seen = set()
        while pending:
            d, node, depth = pending.pop()
            key = self._key(node)
            if key in seen:
                raise Corrupt("%s: directory %s (inode %s) is reachable twice: a directory loop"
                              % (self.dev.name, d, key), "directory")
            seen.add(key)
            dirs, others, subs = [], [], []
            for name, ref in self.entries(node):
                child = self.node(ref)
                if child.is_dir():
                    dirs.append(name)
                    subs.append((name, child))
                else:
                    others.append(name)
            dirs.sort()
            others.sort()
            yield d, dirs, others
            if depth >= MAX_DEPTH and subs:
                raise Corrupt("%s: %s: directories nested deeper than %d" % (self.dev.name, d, MAX_DEPTH),
                              "directory")
            subs.sort(key=lambda s: s[0])
            for name, child in reversed(subs):
                pending.append(((d.rstrip("/") + "/" + name), child, depth + 1))

    def _key(self, node):
        return node.number

    def read(self, path: str) -> bytes:
        """A whole file's bytes (use open() for large ones)."""
        node = self.lookup(path)
        if node.is_dir():
            raise NotFound("%s: %s is a directory" % (self.dev.name, path), path)
        buf = bytearray(node.size)
        n = self.readinto_file(node, 0, buf)
        return bytes(buf) if n == node.size else bytes(buf[:n])

    def exists(self, path: str) -> bool:
        try:
            self.lookup(path)
            return True
        except NotFound:
            return False

    def readlink(self, path: str) -> str:
        node = self.lookup(path, follow=False)
        if not node.is_symlink():
            raise NotFound("%s: %s is not a symbolic link" % (self.dev.name, path), path)
        return self.readlink_inode(node)

    def read_inode_data(self, inode, limit=None):
        """An inode's bytes (at most `limit`)."""
        size = inode.size if limit is None else min(limit, inode.size)
        buf = bytearray(size)
        self.readinto_file(inode, 0, buf)
        return bytes(buf)

    def info(self) -> dict:
        """A few facts for people (cloud-boot fs info); readers add their own."""
        return {"type": self.TYPE, "label": self.label, "uuid": self.uuid_str, "device": self.dev.name}
