"""Debian packages of the initramfs's target arch, through our private apt configuration, cached.

Each arch's suite and kernel metapackage are the `arches` table's (TOOLCHAIN-NOTES §4, §6): amd64 and arm64
from trixie, riscv64 and loong64 from sid. CPython comes from the same suite as the kernel.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.paths import cache_dir
from cloudboot.run import run
from cloudboot.toolchain import apt

#: Dependencies we never follow: configuration, data and tooling packages a PID 1 does not use.
STOP = {"debconf", "cdebconf", "debconf-2.0", "media-types", "mime-support", "netbase", "tzdata",
        "readline-common", "dpkg", "perl-base", "libc-bin", "libdebian-installer4", "libnewt0.52", "libslang2",
        "libtextwrap1", "libselinux1", "libpcre2-8-0"}


@dataclass(frozen=True)
class Deb:
    """A downloaded package: name, version and the .deb file."""

    name: str
    version: str
    path: Path


class Archive:
    """One suite of the Debian archive for one arch (any spelling; `.arch` is Debian's): package metadata,
    downloads and unpacked trees. The suite defaults to the one we take the arch's kernel from."""

    def __init__(self, arch: str, suite: str | None = None) -> None:
        self.target = arches.get(arch)
        self.arch = self.target.debian
        self.suite = suite or self.target.kernel_suite
        self.apt = apt.PrivateApt(f"{self.suite}-{self.arch}", [self.suite], archs=[self.arch])
        self.root = cache_dir() / "initramfs" / f"{self.suite}-{self.arch}"
        self._updated = False
        self._fields: dict[str, dict[str, str]] = {}

    def _env(self) -> dict[str, str]:
        if not self._updated:
            self.apt.update()
            self._updated = True
        return self.apt.env()

    def show_many(self, packages: list[str]) -> dict[str, dict[str, str]]:
        """Control fields of each package's candidate version (one apt-cache call for the uncached ones);
        packages the suite does not have are absent from the result."""
        want = [p for p in packages if p not in self._fields]
        if want:
            # status 100: none of them is in the suite (those found are printed either way)
            proc = run(self.apt.command("apt-cache", "show", "--no-all-versions", *want), env=self._env(), capture=True,
                       ok=(0, 100))
            for para in proc.stdout.decode().split("\n\n"):
                fields = _parse_paragraph(para)
                if "Package" in fields:
                    self._fields.setdefault(fields["Package"], fields)
            for p in want:
                self._fields.setdefault(p, {})
        return {p: self._fields[p] for p in packages if self._fields.get(p)}

    def show(self, package: str) -> dict[str, str]:
        """The candidate version's control fields, or CloudBootError when the suite has no such package."""
        fields = self.show_many([package]).get(package)
        if not fields:
            raise CloudBootError(f"Debian {self.suite} has no package {package!r} for {self.arch}")
        return fields

    def depends(self, package: str) -> list[str]:
        """Direct Depends/Pre-Depends of the candidate (first alternative of each; versions dropped)."""
        return _depends(self.show(package))

    def closure(self, roots: list[str]) -> list[str]:
        """The roots and every package they depend on, transitively, minus STOP (sorted).

        Virtual packages (no candidate of their own) are skipped: another dependency provides them."""
        for r in roots:
            self.show(r)
        seen: set[str] = set()
        level = list(roots)
        while level:
            level = [p for p in dict.fromkeys(level) if p not in seen and p not in STOP]
            found = self.show_many(level)
            seen.update(found)
            level = [d for fields in found.values() for d in _depends(fields)]
        return sorted(seen)

    def fetch(self, packages: list[str]) -> list[Deb]:
        """Download the candidates of `packages` (once; later runs use the cached .deb files)."""
        debs, missing = [], []
        dest = self.root / "debs"
        dest.mkdir(parents=True, exist_ok=True)
        self.show_many(packages)
        for name in packages:
            fields = self.show(name)
            path = dest / deb_filename(fields)
            debs.append(Deb(name, fields["Version"], path))
            if not path.exists():
                missing.append(f"{name}={fields['Version']}")
        if missing:
            self.apt.download(missing, dest)
        for d in debs:
            if not d.path.exists():
                raise CloudBootError(f"apt-get download did not produce {d.path.name}")
        return debs

    def unpack(self, deb: Deb) -> Path:
        """The package's files, unpacked once under the cache."""
        where = self.root / "unpacked" / deb.path.stem
        if not (where / ".done").exists():
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir(parents=True)
            apt.extract_deb(deb.path, where)
            (where / ".done").touch()
        return where


def _parse_paragraph(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _depends(fields: dict[str, str]) -> list[str]:
    out = []
    for field in ("Pre-Depends", "Depends"):
        for item in fields.get(field, "").split(","):
            name = item.split("|")[0].strip().split(" ")[0].split(":")[0]
            if name:
                out.append(name)
    return out


def deb_filename(fields: dict[str, str]) -> str:
    """The name `apt-get download` gives a package's file (the epoch's ':' quoted as %3a)."""
    version = fields["Version"].replace(":", "%3a")
    return f"{fields['Package']}_{version}_{fields['Architecture']}.deb"


@dataclass(frozen=True)
class Kernel:
    """A Debian kernel: its release (`uname -r`), the package holding the modules and the one holding the
    image (the same package on trixie; sid splits linux-image into linux-binary + linux-modules)."""

    release: str
    image_package: str
    modules_deb: Deb
    binary_deb: Deb
    #: sid's linux-base-<release> (modules.builtin, config), when the image package depends on it
    base_deb: Deb | None = None


def resolve_kernel(archive: Archive, kernel_package: str | None) -> tuple[str, str]:
    """(release, linux-image package) for `--kernel-package` (a release such as 6.12.117+deb13-amd64, or
    a package name), or the suite's current kernel when None."""
    if kernel_package is None:
        meta = archive.target.kernel_package
        image = next((d for d in archive.depends(meta) if re.match(r"linux-image-\d", d)), None)
        if image is None:
            raise CloudBootError(f"{meta} in {archive.suite} depends on no versioned linux-image package")
    else:
        image = kernel_package if kernel_package.startswith("linux-") else f"linux-image-{kernel_package}"
        try:
            archive.show(image)
        except CloudBootError:
            raise CloudBootError(f"no kernel package {image} in Debian {archive.suite} for {archive.arch}; "
                                 f"--kernel-package takes a release such as "
                                 f"{_example_release(archive)} (see `apt-cache search linux-image`)") from None
    release = re.sub(r"^linux-(image|binary|modules)-", "", image)
    return release, f"linux-image-{release}"


def _example_release(archive: Archive) -> str:
    try:
        return resolve_kernel(archive, None)[0]
    except CloudBootError:
        return "<version>-<flavour>"


def fetch_kernel(archive: Archive, kernel_package: str | None) -> Kernel:
    """Download the kernel's modules package (and its image package, if different)."""
    release, image = resolve_kernel(archive, kernel_package)
    deps = archive.depends(image)
    modules_pkg = f"linux-modules-{release}" if f"linux-modules-{release}" in deps else image
    binary_pkg = f"linux-binary-{release}" if f"linux-binary-{release}" in deps else image
    base_pkg = f"linux-base-{release}" if f"linux-base-{release}" in deps else None
    debs = {d.name: d for d in archive.fetch(sorted({modules_pkg, binary_pkg} | ({base_pkg} if base_pkg else set())))}
    return Kernel(release, image, debs[modules_pkg], debs[binary_pkg], debs.get(base_pkg) if base_pkg else None)


#: Where kernel packages put the image (EFI-stub PE; riscv64 names it vmlinux-*): linux-image-<release> under
#: /boot (Debian 13), or sid's newer linux-binary-<release> under /usr/lib/modules/<release>/.
IMAGE_PATHS = ("boot/vmlinuz-{}", "boot/vmlinux-{}", "usr/lib/modules/{}/vmlinuz", "usr/lib/modules/{}/vmlinux")


def find_image(tree: Path, release: str, package: str) -> Path:
    """The kernel image for `release` in an unpacked kernel package, in either layout; CloudBootError naming
    the package and the places looked at otherwise."""
    for pattern in IMAGE_PATHS:
        path = tree / pattern.format(release)
        if path.is_file():
            return path
    raise CloudBootError(f"no kernel image for {release} in {package} (looked for "
                         f"{', '.join(g.format(release) for g in IMAGE_PATHS)})")


def kernel_image(arch: str, kernel_package: str | None = None) -> tuple[Path, str]:
    """(path of the kernel image, release) of the Debian kernel the initramfs is built for (tests use it)."""
    archive = Archive(arch)
    k = fetch_kernel(archive, kernel_package)
    return find_image(archive.unpack(k.binary_deb), k.release, k.binary_deb.path.name), k.release
