#!/usr/bin/env python3
"""`make check-fresh SUITE=trixie|bookworm`: the README's two commands on a fresh Debian, as a new user runs them.

Builds a root with `debootstrap --variant=minbase SUITE` (the archive's address read from this machine's apt
sources) holding only git, make, python3, python3-venv and ca-certificates; gives it this machine's trust store
and pip index settings, so it reaches the registries this machine reaches; clones HEAD into it; mounts what
QEMU and the tests need; runs `make iso`, then `make test` there (`--pytest-args` narrows its pytest run) and
prints each one's time and pytest's summary line. The root stays (until the next run makes a new one), so
`--again` can re-run `make test` there on the current HEAD, with its own pytest arguments. Root only; slow (the
whole suite, from empty caches); not part of CI's default run.

Everything happens in a private mount namespace, so no mount can outlive the check even if it is killed; on any
exit the processes left inside the root are killed and the mounts undone explicitly as well.
"""

from __future__ import annotations

import argparse
import configparser
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "firmware/modules")]  # cloudboot and the portable core it imports

from cloudboot.errors import CloudBootError  # noqa: E402
from cloudboot.paths import cache_dir  # noqa: E402
from cloudboot.run import run  # noqa: E402
from cloudboot.toolchain import apt  # noqa: E402

SUITES = ("trixie", "bookworm")
PACKAGES = ["git", "make", "python3", "python3-venv", "ca-certificates"]
SRC = "/root/cloud-boot"  # where the clone lives inside the root
#: Environment passed into the root: pip's settings, CA bundles and proxies (the chroot shares our network).
PASS_ENV = re.compile(r"^(PIP_\w+|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|GIT_SSL_CAINFO|"
                      r"(https?|ftp|no|all)_proxy|(HTTPS?|FTP|NO|ALL)_PROXY)$")
#: pip settings whose values may name local files or directories (indexes, wheel dirs, constraints, certs).
PIP_PATH_KEYS = {"find-links", "index-url", "extra-index-url", "constraint", "requirement", "cert", "client-cert"}
SUMMARY = re.compile(r"^=+ (.*\b(passed|failed|error|errors)\b.* in [\d.]+s.*?) =+$")


def apt_fetch_settings() -> list[Path]:
    """This machine's apt configuration files that only say how the archive is reached (`Acquire::` options:
    proxies, date checks of a frozen mirror's Release files, index targets), for the root's apt and ours."""
    out = []
    for f in [Path("/etc/apt/apt.conf"), *sorted(Path("/etc/apt/apt.conf.d").glob("*"))]:
        if not f.is_file():
            continue
        text = re.sub(r"(?m)^\s*(//|#).*$", "", f.read_text(errors="replace"))
        statements = [t.strip() for t in re.split(r";\s*(?=[A-Za-z])", text) if t.strip()]
        if statements and all(t.startswith("Acquire::") for t in statements):
            out.append(f)
    return out


def pip_config_files() -> list[Path]:
    """pip's configuration files on this machine, in pip's order (global, user, PIP_CONFIG_FILE)."""
    home = Path.home()
    files = [Path("/etc/pip.conf"), *sorted(Path("/etc/xdg/pip").glob("*.conf")),
             home / ".pip/pip.conf", home / ".config/pip/pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return [f for f in files if f.is_file()]


def local_paths(value: str) -> list[Path]:
    """Local files and directories a pip setting names (plain paths and file:// URLs; URLs elsewhere dropped)."""
    out = []
    for token in value.split():
        if token.startswith("file:"):
            token = urllib.parse.unquote(urllib.parse.urlparse(token).path)
        if token.startswith("/") and Path(token).exists():
            out.append(Path(token))
    return out


def pip_settings() -> tuple[list[Path], list[Path]]:
    """(config files, local paths the configuration and PIP_* variables reference). A local index
    (`.../simple`) comes with its parent directory, where such indexes keep the files they link to."""
    files = pip_config_files()
    items = [(k[4:].lower().replace("_", "-"), v) for k, v in os.environ.items() if k.startswith("PIP_")]
    for f in files:
        cp = configparser.RawConfigParser()
        cp.read(f)
        for section in cp.sections():
            items += [(k.replace("_", "-"), v) for k, v in cp.items(section)]
    paths = []
    for key, value in items:
        if key in PIP_PATH_KEYS:
            paths += [p.parent if key.endswith("index-url") and p.name == "simple" else p
                      for p in local_paths(value)]
    return files, list(dict.fromkeys(paths))


def _umount(target: str | Path) -> None:
    if subprocess.run(["umount", "-R", str(target)]).returncode:
        subprocess.run(["umount", "-R", "-l", str(target)])


class Root:
    """A debootstrapped root and what is mounted into it; `close()` undoes the mounts and kills what runs there."""

    def __init__(self, path: Path, suite: str) -> None:
        self.path, self.suite = path, suite
        self.mounts: list[Path] = []

    def inside(self, p: str | Path) -> Path:
        return self.path / str(p).lstrip("/")

    def create(self, mirror: str) -> None:
        debs = cache_dir() / "check-fresh" / f"debootstrap-{self.suite}"
        debs.mkdir(parents=True, exist_ok=True)
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", f"--cache-dir={debs}",
             self.suite, self.path, mirror])
        # A chroot shares the host's network and init: package scripts must not start daemons (Debian's
        # container images do the same), or a test's docker-registry install would leave one running.
        policy = self.inside("/usr/sbin/policy-rc.d")
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)

    def copy_in(self, src: Path) -> None:
        """A host file or tree at the same path inside the root."""
        dst = self.inside(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_file():
            dst.unlink()  # e.g. a resolv.conf link: the host's contents replace it
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)

    def mount(self, *args: str, where: str) -> None:
        target = self.inside(where)
        target.mkdir(parents=True, exist_ok=True)
        run(["mount", *args, target])
        self.mounts.append(target)

    def mount_all(self, readonly: list[Path]) -> None:
        self.mount("-t", "proc", "proc", where="/proc")
        self.mount("-t", "sysfs", "sysfs", where="/sys")
        self.mount("--rbind", "/dev", where="/dev")  # with /dev/pts, /dev/shm
        self.mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", where="/tmp")
        self.mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", where="/run")
        lock = self.inside("/run/lock")  # as systemd-tmpfiles makes it at boot: /var/lock (zfs-fuse locks there)
        lock.mkdir()
        lock.chmod(0o1777)
        for p in readonly:  # pip's local indexes and wheel directories: read-only, never copied
            if p.is_dir():
                self.mount("--bind", str(p), where=str(p))
                run(["mount", "-o", "remount,bind,ro", self.inside(p)])

    def processes(self) -> list[int]:
        """Processes whose root is this root (left behind by a test, or still running after a signal)."""
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                try:
                    if os.readlink(d / "root") == str(self.path):
                        pids.append(int(d.name))
                except OSError:
                    pass
        return pids

    def close(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            for pid in pids:
                print(f"check-fresh: {signal.Signals(sig).name} to {pid} (still running in the root)", flush=True)
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if pids:
                time.sleep(3)
        for target in reversed(self.mounts):
            _umount(target)
        self.mounts.clear()
        for target in sorted(self.mounted(), key=len, reverse=True):  # what a tool left (debootstrap's /proc)
            _umount(target)
        left = self.mounted()
        if left:
            raise CloudBootError(f"still mounted under {self.path}: {' '.join(left)}")

    def mounted(self) -> list[str]:
        """Mount points at or below the root in this mount namespace."""
        prefix = str(self.path)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4].replace("\\040", " ") for line in f]
        return [p for p in points if p == prefix or p.startswith(prefix + "/")]

    def remove(self) -> None:
        if self.mounted():
            raise CloudBootError(f"not removing {self.path}: something is mounted below it")
        shutil.rmtree(self.path, ignore_errors=True)


def clone_head(root: Root) -> None:
    """A clean clone of HEAD at SRC inside the root, or the clone already there moved to HEAD (its venv
    installs the checkout editable, so it follows)."""
    head = run(["git", "-C", REPO, "rev-parse", "HEAD"], capture=True).stdout.decode().strip()
    dirty = run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture=True).stdout
    if dirty.strip():
        print(f"check-fresh: uncommitted changes are not tested, only HEAD {head[:12]}", flush=True)
    dest = root.inside(SRC)
    if not dest.exists():
        run(["git", "clone", "--quiet", "--no-checkout", REPO, dest])
    else:
        run(["git", "-C", dest, "fetch", "--quiet", REPO, head])
    run(["git", "-C", dest, "checkout", "--quiet", "--detach", head])


def chroot_env() -> dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "TERM": "dumb", "CI": "true", "DEBIAN_FRONTEND": "noninteractive"}
    env.update({k: v for k, v in os.environ.items() if PASS_ENV.match(k)})
    return env


def in_root(root: Root, command: str, log) -> tuple[bool, float, str]:
    """A shell command in the clone inside the root, streamed to stdout and the log: (ok, seconds, pytest's
    summary line if one was printed)."""
    cmd = ["chroot", str(root.path), "/bin/sh", "-c", f"cd {SRC} && exec {command}"]
    print(f"+ {shlex.join(cmd)}", flush=True)
    t0 = time.monotonic()
    summary = ""
    with subprocess.Popen(cmd, env=chroot_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            m = SUMMARY.match(line.strip())
            if m:
                summary = m.group(1)
        code = proc.wait()
    return code == 0, time.monotonic() - t0, summary


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def check(suite: str, where: Path, pytest_args: str | None, again: str | None) -> int:
    """Make the root and run `make iso`, then `make test` (with PYTEST_ARGS=pytest_args if given) in it; or,
    with `again`, run `make test PYTEST_ARGS=again` (HEAD's packages, firmware and tests) in the root the last run
    left (is a timeout load? re-run that test alone)."""
    root = Root(where / suite / "root", suite)
    root.path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(root.path.parent / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CloudBootError(f"another check-fresh {suite} is running ({root.path.parent}/lock)") from None
    files, paths = pip_settings()
    if again is not None:
        steps = [f"make test PYTEST_ARGS={shlex.quote(again)}"]
    else:
        steps = ["make iso", "make test" + (f" PYTEST_ARGS={shlex.quote(pytest_args)}" if pytest_args else "")]
    if again is not None and not (root.inside(SRC) / ".venv").is_dir():
        raise CloudBootError(f"no root with a built checkout at {root.path} to run pytest in again")
    results = []
    try:
        if again is None:
            apt.system_install(["debootstrap"])
            root.remove()
            root.create(apt.archive_uri())
            for p in [Path("/etc/ssl/certs/ca-certificates.crt"), Path("/usr/local/share/ca-certificates"),
                      Path("/etc/resolv.conf"), Path("/etc/hosts"), *apt_fetch_settings(), *files,
                      *(p for p in paths if p.is_file())]:
                if p.exists():
                    root.copy_in(p)
        clone_head(root)
        root.mount_all([p for p in paths if p.is_dir()])
        with open(root.path.parent / ("again.log" if again is not None else "make.log"), "w") as log:
            for step in steps:
                ok, seconds, summary = in_root(root, step, log)
                results.append((step, ok, seconds, summary))
                print(f"check-fresh: {step} {'passed' if ok else 'FAILED'} in {minutes(seconds)}", flush=True)
                if not ok:
                    break
    finally:
        root.close()
    head = run(["git", "-C", root.inside(SRC), "rev-parse", "HEAD"], capture=True).stdout.decode().strip()
    print(f"\ncheck-fresh {suite} at {head[:12]} (log: {log.name}):")
    for step, ok, seconds, summary in results:
        print(f"  {step}: {'passed' if ok else 'FAILED'} in {minutes(seconds)}"
              + (f"; pytest: {summary}" if summary else ""))
    passed = len(results) == len(steps) and all(r[1] for r in results)
    print(f"  the root stays at {root.path} for a look or --again (the next run replaces it)")
    return 0 if passed else 1


def _descendants(pid: int) -> list[int]:
    """Every process below pid (children first found, then theirs), from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, level = [], children.get(pid, [])
    while level:
        out += level
        level = [c for p in level for c in children.get(p, [])]
    return out


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP: stop what we started (debootstrap, make), then unwind through the cleanup."""
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=SUITES, default="trixie")
    p.add_argument("--dir", type=Path, default=REPO / "build" / "check-fresh",
                   help="where the root is made (SUITE/root); it needs about 20 GB")
    p.add_argument("--pytest-args", metavar="ARGS",
                   help="make test's pytest selection in the root (PYTEST_ARGS), e.g. 'tests/unit tests/portable'")
    p.add_argument("--again", metavar="PYTEST_ARGS",
                   help="run `make test` with these pytest arguments in the root the last run left, at HEAD, "
                        "e.g. one test alone")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("check-fresh: needs root (debootstrap, chroot, mounts)", file=sys.stderr)
        return 2
    if os.environ.get("CLOUDBOOT_FRESH_NS") != "1":  # re-run in a private mount namespace
        os.environ["CLOUDBOOT_FRESH_NS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                              sys.executable, *sys.argv])
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind through the cleanup like Ctrl-C does
        signal.signal(sig, _interrupted)
    try:
        return check(args.suite, args.dir.resolve(), args.pytest_args, args.again)
    except CloudBootError as exc:
        print(f"check-fresh: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"check-fresh: interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
