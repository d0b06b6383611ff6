"""What every filesystem reader shares: path resolution with symlinks, and the small public API."""

from diskfs.errors import Corrupt, NotFound

MAX_SYMLINKS = 40


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
