"""Debian's archive through a private apt configuration (APT_CONFIG), never touching the system's sources.

The archive's address is read from the machine's own apt sources, so nothing here names a host.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from cloudboot.errors import CloudBootError
from cloudboot.paths import cache_dir
from cloudboot.run import run, which

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _source_uris() -> list[str]:
    """Every `deb` URI named by the machine's apt sources (deb822 and one-line formats)."""
    uris: list[str] = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            uris += re.findall(r"^URIs:\s*(\S+)", text, re.M)
        else:
            uris += re.findall(r"^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
    return uris


def archive_uri() -> str:
    """The Debian archive (`.../debian`) this machine's apt already uses; CLOUDBOOT_DEBIAN_MIRROR overrides."""
    if os.environ.get("CLOUDBOOT_DEBIAN_MIRROR"):
        return os.environ["CLOUDBOOT_DEBIAN_MIRROR"].rstrip("/")
    for uri in _source_uris():
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise CloudBootError("no Debian archive URI (ending in /debian) found in /etc/apt/sources.list[.d]; "
                         "set CLOUDBOOT_DEBIAN_MIRROR")


def host_codename() -> str:
    """The running Debian release's codename (bookworm, trixie, ...)."""
    text = Path("/etc/os-release").read_text()
    m = re.search(r"^VERSION_CODENAME=(\S+)", text, re.M)
    return m.group(1) if m else "unknown"


@functools.cache
def host_arch() -> str:
    """dpkg's name for the host architecture."""
    return run(["dpkg", "--print-architecture"], capture=True).stdout.decode().strip()


class PrivateApt:
    """An apt universe of its own under the cache: its own sources, lists and package cache.

    `system_status=True` shares dpkg's status so that `install` resolves against what is installed
    (used to install QEMU from backports); otherwise it only downloads.
    """

    def __init__(self, name: str, suites: list[str], archs: list[str] | None = None, *,
                 deb_src: bool = False, system_status: bool = False, components: str = "main") -> None:
        self.root = cache_dir() / "apt" / name
        self.archs = archs or [host_arch()]
        self.suites, self.deb_src, self.system_status, self.components = suites, deb_src, system_status, components
        self.config = self.root / "apt.conf"

    def _write_config(self) -> None:
        uri = archive_uri()
        for d in ("lists/partial", "cache/archives/partial", "preferences.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        arch = ",".join(self.archs)
        lines = []
        for suite in self.suites:
            lines.append(f"deb [arch={arch} signed-by={KEYRING}] {uri} {suite} {self.components}")
            if self.deb_src:
                lines.append(f"deb-src [signed-by={KEYRING}] {uri} {suite} {self.components}")
        (self.root / "sources.list").write_text("\n".join(lines) + "\n")
        status = "/var/lib/dpkg/status" if self.system_status else "/dev/null"
        archs = " ".join(f'"{a}";' for a in self.archs)
        self.config.write_text(
            f'Dir::Etc::SourceList "{self.root}/sources.list";\n'
            'Dir::Etc::SourceParts "/dev/null";\n'
            'Dir::Etc::Preferences "/dev/null";\n'
            f'Dir::Etc::PreferencesParts "{self.root}/preferences.d";\n'
            f'Dir::State::Lists "{self.root}/lists";\n'
            f'Dir::State::status "{status}";\n'
            f'Dir::Cache "{self.root}/cache";\n'
            f'APT::Architecture "{self.archs[0]}";\n'
            f"APT::Architectures {{ {archs} }};\n"
            'Acquire::Languages "none";\n'
            'Acquire::Retries "3";\n'
        )

    #: apt's binary package caches, which a host's apt.conf.d may switch off (Debian's container images do), and
    #: apt reads those parts after APT_CONFIG: without the caches every apt-cache call parses the suite's
    #: indexes again (sid: 1.1 s a call, 0.23 s with them; `make test` makes hundreds). Given on the command line,
    #: which wins over both; apt checks the caches against the lists itself.
    CACHE_OPTIONS = ("-o", "Dir::Cache::pkgcache=pkgcache.bin", "-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin")

    def command(self, tool: str, *args: str) -> list[str]:
        """`tool` (apt-get, apt-cache) with its options for this configuration, then `args`."""
        return [tool, *self.CACHE_OPTIONS, *args]

    def env(self) -> dict[str, str]:
        """Environment for apt commands run against this configuration."""
        return {**os.environ, "APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive"}

    def update(self, max_age_s: float = 6 * 3600) -> None:
        """`apt-get update` unless the lists are younger than max_age_s."""
        which("apt-get")
        self._write_config()
        stamp = self.root / "updated"
        import time

        if stamp.exists() and time.time() - stamp.stat().st_mtime < max_age_s:
            return
        run(self.command("apt-get", "update"), env=self.env())
        stamp.touch()

    def download(self, packages: list[str], dest: Path) -> list[Path]:
        """Download .deb files (apt checks them against the signed indexes) into dest; return their paths."""
        self.update()
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        run(self.command("apt-get", "download", *packages), cwd=dest, env=self.env())
        return sorted(set(dest.glob("*.deb")) - before) or sorted(dest.glob("*.deb"))

    def source(self, package: str, dest: Path) -> None:
        """`apt-get source --download-only` into dest (orig tarball, debian tarball, .dsc)."""
        self.update()
        dest.mkdir(parents=True, exist_ok=True)
        run(self.command("apt-get", "source", "--download-only", package), cwd=dest, env=self.env())

    def install(self, packages: list[str], target_release: str | None = None) -> None:
        """Install into the system, resolving against this configuration's suites (needs root)."""
        self.update()
        cmd = self.command("apt-get", "install", "-y", "-q", "--no-install-recommends")
        if target_release:
            cmd += ["-t", target_release]
        run([*cmd, *packages], env=self.env())


def system_install(packages: list[str]) -> None:
    """Install packages from the system's own sources (root; `apt-get update` once per run if needed)."""
    installed = _installed(packages)
    missing = [p for p in packages if p not in installed]
    if not missing:
        return
    if os.geteuid() != 0:
        raise CloudBootError(f"missing Debian packages {' '.join(missing)}: run "
                             f"'sudo apt-get install {' '.join(missing)}'")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)
    except CloudBootError:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def _installed(packages: list[str]) -> set[str]:
    """Which of `packages` dpkg has installed (one dpkg-query; status 1 when it knows not all of them)."""
    proc = run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *packages], capture=True, ok=(0, 1))
    lines = [line.split(" ", 1) for line in proc.stdout.decode().splitlines()]
    return {name.split(":")[0] for name, *status in lines if status and status[0].endswith("install ok installed")}


def extract_deb(deb: Path, root: Path) -> None:
    """Unpack a .deb's files under root (no maintainer scripts, no dpkg database)."""
    run(["dpkg-deb", "-x", deb, root], quiet=True)
