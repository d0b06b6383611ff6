"""Boot Loader Specification Type #1 entries (`/loader/entries/*.conf`), parsed and ordered the way
systemd-boot does: entries with a sort-key first (by sort-key, machine-id, then version, newest first),
then the others by file name, newest version first. Portable: MicroPython and CPython."""

from bootplan.version import compare


class BlsError(ValueError):
    """An entry that cannot be booted; the message names the file and line."""


class Entry:
    """One entry: `linux`, `initrd` (list), `options` (joined), `title`, `version`, `sort_key`, ..."""

    def __init__(self, name):
        self.name = name  # file name without .conf
        self.title = self.version = self.sort_key = self.machine_id = self.linux = self.efi = None
        self.initrd = []
        self.options = []
        self.architecture = None

    @property
    def cmdline(self):
        return " ".join(self.options)

    def label(self):
        return self.title or self.name

    def __repr__(self):
        return "Entry(%r, version=%r)" % (self.name, self.version)


def parse(name, text):
    """One .conf file's text -> Entry. Unknown keys are ignored (the spec allows extensions)."""
    e = Entry(name[:-5] if name.endswith(".conf") else name)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key == "initrd":
            e.initrd.append(value)
        elif key == "options":
            e.options.append(value)
        elif key in ("title", "version", "linux", "efi", "architecture"):
            setattr(e, key, value)
        elif key == "sort-key":
            e.sort_key = value
        elif key == "machine-id":
            e.machine_id = value
    if not e.linux and not e.efi:
        raise BlsError("%s: no 'linux' or 'efi' line" % name)
    return e


def _cmp(a, b):
    if (a.sort_key is None) != (b.sort_key is None):
        return -1 if a.sort_key is not None else 1
    if a.sort_key is not None:
        if a.sort_key != b.sort_key:
            return -1 if a.sort_key < b.sort_key else 1
        if a.machine_id != b.machine_id:
            return -1 if (a.machine_id or "") < (b.machine_id or "") else 1
        c = compare(a.version or "", b.version or "")
        if c:
            return -c  # newest first
    return -compare(a.name, b.name)


def order(entries):
    """Entries in boot-menu order; the first one is the default."""
    out = []
    for e in entries:
        pos = 0
        while pos < len(out) and _cmp(out[pos], e) <= 0:
            pos += 1
        out.insert(pos, e)
    return out
