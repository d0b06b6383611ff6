"""Finding a distro's kernel on a filesystem (portable). Works on any object with listdir/exists/read.

Order: BLS Type #1 entries (/boot/loader/entries, /loader/entries: Fedora, RHEL, openSUSE), then the
distro naming rules (Debian/Ubuntu vmlinuz-<v> + initrd.img-<v>; Fedora/RHEL/Arch/Alpine initramfs-<v>.img,
initramfs-<flavour>.img; openSUSE vmlinuz-<v> or, on arm64, Image-<v> + initrd-<v>, usually symlinks into
/usr/lib/modules/<v>/, which the filesystem follows), newest version first; a rescue image never wins over a
real version.
"""

from bootplan import bls
from bootplan.version import newest_first


class Candidate:
    """A bootable kernel: where it is, its initrds, its command line (if the source gives one) and why."""

    def __init__(self, version, linux, initrd, options, source):
        self.version, self.linux, self.initrd, self.options, self.source = version, linux, initrd, options, source

    def __repr__(self):
        return "Candidate(%r, %r, %r)" % (self.version, self.linux, self.initrd)


def _listdir(fs, path):
    try:
        return fs.listdir(path)
    except Exception:  # noqa: BLE001 - a missing or unreadable directory just has no candidates
        return []


def from_bls(fs):
    out = []
    for d in ("/boot/loader/entries", "/loader/entries"):
        for name in _listdir(fs, d):
            if not name.endswith(".conf"):
                continue
            try:
                e = bls.parse(name, fs.read(d + "/" + name).decode())
            except (bls.BlsError, UnicodeError):
                continue
            if not e.linux:
                continue
            base = "/boot" if d.startswith("/boot") and not fs.exists(e.linux) else ""
            out.append((e, Candidate(e.version or e.name, base + e.linux, [base + i for i in e.initrd], e.cmdline,
                                     "BLS entry %s/%s" % (d, name))))
    return [c for _, c in sorted_entries(out)]


def sorted_entries(pairs):
    order = bls.order([e for e, _ in pairs])
    return [(e, c) for e in order for e2, c in pairs if e2 is e]


#: The initrd of kernel <prefix><v>, in the kernel's directory, first match: Debian/Ubuntu, Fedora/RHEL/Arch,
#: openSUSE, Alpine (initramfs-<flavour>), and initramfs.<v> as the original also paired (REFERENCE §4.2 step 4).
INITRD_PATTERNS = ("initrd.img-%s", "initramfs-%s.img", "initrd-%s", "initramfs-%s", "initramfs.%s")
KERNEL_PREFIXES = ("vmlinuz-", "Image-")  # Image-<v>: openSUSE's arm64 kernels


def kernel_version(name):
    """The version suffix of a kernel file name (`vmlinuz-6.1.0-9-amd64` -> `6.1.0-9-amd64`), or None."""
    for p in KERNEL_PREFIXES:
        if name.startswith(p) and len(name) > len(p):
            return name[len(p):]
    return None


def initrd_for(fs, kernel, follow=True):
    """[path] of the initrd paired with the kernel at `kernel` by its version suffix, in the kernel's directory
    (a symlink such as Debian's /vmlinuz pairs as its target), or [] when none is there. Never another
    version's initrd: a kernel with the wrong version's modules fails later and less clearly than without."""
    d, _, name = kernel.rpartition("/")
    version = kernel_version(name)
    if version is None:
        target = _link(fs, kernel) if follow else None
        return initrd_for(fs, _join(d, target), False) if target else []
    names = _listdir(fs, d or "/")
    return [d + "/" + p % version for p in INITRD_PATTERNS if (p % version) in names][:1]


def _link(fs, path):
    try:
        return fs.readlink(path)
    except Exception:  # noqa: BLE001 - not a symlink (or no readlink): nothing to follow
        return None


def _join(d, target):
    """The absolute path of a symlink's target (`..` and `.` resolved)."""
    parts = [] if target.startswith("/") else [p for p in d.split("/") if p]
    for p in target.split("/"):
        if p == "..":
            parts = parts[:-1]
        elif p and p != ".":
            parts.append(p)
    return "/" + "/".join(parts)


def from_names(fs):
    """vmlinuz-<version> (or Image-<version>) in /boot (and /), each with the initrd of the same version."""
    out = []
    for d in ("/boot", ""):
        names = _listdir(fs, d or "/")
        for name in names:
            version = kernel_version(name)
            if version is None or name.endswith((".old", ".bak")):
                continue
            initrd = [d + "/" + p % version for p in INITRD_PATTERNS if (p % version) in names]
            out.append(Candidate(version, d + "/" + name, initrd[:1], "", "%s/%s" % (d, name)))
    real = [c for c in out if "rescue" not in c.version]
    rescue = [c for c in out if "rescue" in c.version]
    return newest_first(real, key=lambda c: c.version) + rescue


#: How the kernels we start begin: PE (EFI stub, EFI zboot), gzip, zstd.
KERNEL_MAGICS = (b"MZ", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")


def not_a_kernel(fs, path):
    """Why the file at `path` cannot be a kernel we start (unreadable, or it starts with other bytes), or None.
    Ubuntu's cloud images leave placeholder /boot/vmlinuz-* files; they must not win on version alone."""
    try:
        head = fs.open(path).read(4)
    except Exception as exc:  # noqa: BLE001 - any filesystem error: the candidate is unusable, say why
        return "unreadable (%s)" % exc
    for magic in KERNEL_MAGICS:
        if head[:len(magic)] == magic:
            return None
    return "not a kernel image (starts with %r)" % bytes(head)


def find(fs, log=None):
    """Every candidate, best first: BLS entries, then names (a kernel a BLS entry already names is not listed
    again); files that cannot be kernels are left out (and reported through `log(message)` when given)."""
    entries = from_bls(fs)
    named = [c for c in from_names(fs) if all(e.linux != c.linux for e in entries)]
    out = []
    for c in entries + named:
        why = not_a_kernel(fs, c.linux)
        if why is None:
            out.append(c)
        elif log is not None:
            log("skipping %s: %s" % (c.linux, why))
    return out
