"""What every filesystem reader shares: path resolution with symlinks, and the small public API."""

from diskfs.errors import Corrupt, NotFound

MAX_SYMLINKS = 40


class File:
    """A read-only file object over a filesystem inode: read, readinto, seek, tell."""

    def __init__(self, fs, inode, path):
        self.fs, self.inode, self.path, self.pos = fs, inode, path, 0

    @property
    def size(self):
        return self.inode.size

    def readinto(self, buf):
        n = self.fs.readinto_file(self.inode, self.pos, buf) if self.pos < self.inode.size else 0
        if n < len(buf):
            buf[n:] = bytes(len(buf) - n)  # holes and the end read as zeros; n says how much is data
        self.pos += n
        return n

    def read(self, size=-1):
        left = max(0, self.inode.size - self.pos)
        size = left if size is None or size < 0 else min(size, left)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])

    def seek(self, offset, whence=0):
        base = (0, self.pos, self.inode.size)[whence]
        if base + offset < 0:
            raise ValueError("%s: seek to a negative position" % self.path)
        self.pos = base + offset
        return self.pos

    def tell(self):
        return self.pos

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class FsBase:
    """Subclasses provide root(), entries(inode) -> [(name, ref)], node(ref), readlink_inode(inode) and
    read_inode_data(inode); inodes have is_dir() and is_symlink()."""

    def lookup(self, path, follow=True):
        """The inode at `path` (symlinks followed, also in the last component when `follow`)."""
        parts = [p for p in path.split("/") if p]
        stack = [self.root()]
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            match = [ref for n, ref in self.entries(stack[-1]) if n == name]
            if not match:
                raise NotFound("%s: %s: no such file or directory" % (self.dev.name, path))
            node = self.node(match[0])
            if node.is_symlink() and (parts or follow):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise Corrupt("%s: %s: too many levels of symbolic links" % (self.dev.name, path))
                target = self.readlink_inode(node)
                if target.startswith("/"):
                    stack = [self.root()]
                parts = [p for p in target.split("/") if p] + parts
                continue
            stack.append(node)
        return stack[-1]

    def open(self, path):
        """A file object for reading `path` (following symlinks)."""
        node = self.lookup(path)
        if node.is_dir():
            raise NotFound("%s: %s is a directory" % (self.dev.name, path))
        return File(self, node, path)

    def stat(self, path):
        """(mode, size) of `path` (not following a final symlink)."""
        node = self.lookup(path, follow=False)
        return node.mode, node.size

    def walk(self, top="/"):
        """(directory, [subdirectories], [other names]) for `top` and every directory below (no symlinks)."""
        pending = [top.rstrip("/") or "/"]
        while pending:
            d = pending.pop(0)
            dirs, others = [], []
            for name, ref in self.entries(self.lookup(d)):
                (dirs if self.node(ref).is_dir() else others).append(name)
            dirs.sort()
            others.sort()
            yield d, dirs, others
            pending.extend((d.rstrip("/") + "/" + n) for n in dirs)

    def listdir(self, path):
        return sorted(n for n, _ in self.entries(self.lookup(path)))

    def read(self, path):
        return self.read_inode_data(self.lookup(path))

    def exists(self, path):
        try:
            self.lookup(path)
            return True
        except NotFound:
            return False

    def readlink(self, path):
        node = self.lookup(path, follow=False)
        if not node.is_symlink():
            raise NotFound("%s: %s is not a symbolic link" % (self.dev.name, path))
        return self.readlink_inode(node)
