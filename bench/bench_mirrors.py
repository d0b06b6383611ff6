"""8 concurrent init-path pulls of a 64 MiB kernel from Debian's docker-registry on 127.0.0.1: processes on the
host each running the init's plan mode (plan, target, verified kernel pull; no QEMU) against 8 `curl`s of the
same blob, as aggregate throughput, with the registry's CPU seconds for each. Then the same with two mirrors
where the first dies halfway through a kernel download: ours fail over by themselves (retry discipline, then
Range on the second mirror); each curl is followed by `curl -C -` on the second mirror when it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import report

PULLS = 8
SIZE = 64 << 20
MIB = SIZE / (1 << 20)


def _cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pull(plan: str, workdir: str, mirror: str) -> None:
    """One init-path pull (the child process): plan mode as PID 1 runs it, output discarded."""
    from cloudboot.init import planmode

    cmd = {"cloudboot.plan": plan, "cloudboot.lldp": "0"}
    if mirror:
        cmd["cloudboot.registry.mirror"] = mirror
    t = planmode.run(cmd, workdir)
    assert os.path.getsize(t.kernel) == SIZE


def _ours(plan: str, work: Path, mirror: str = "") -> float:
    procs = []
    t0 = time.monotonic()
    for i in range(PULLS):
        d = work / f"ours{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.bench_mirrors", "--pull", plan, str(d), mirror],
                                      stdout=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"bench_mirrors: an init-path pull failed (status {p.returncode})")
    return time.monotonic() - t0


def _curls(urls: list[str], work: Path) -> float:
    """8 curls of urls[0], each followed by `curl -C -` on the next URL when it fails (a shell's failover)."""
    script = " || ".join(f'curl -sSf -o "$1" {"-C - " if i else ""}{u}' for i, u in enumerate(urls))
    procs = []
    t0 = time.monotonic()
    for i in range(PULLS):
        out = work / f"curl{i}"
        out.unlink(missing_ok=True)
        procs.append(subprocess.Popen(["sh", "-c", script, "sh", str(out)], stderr=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("bench_mirrors: a curl pull failed")
    took = time.monotonic() - t0
    for i in range(PULLS):
        assert (work / f"curl{i}").stat().st_size == SIZE
    return took


def main() -> None:
    import arches
    from cloudboot.cli import main as cli
    from cloudboot.registry.local import Registry, ensure_registry_packages
    from tests.ociregistry import CuttingProxy

    ensure_registry_packages()
    if not shutil.which("curl"):
        raise SystemExit("bench_mirrors: curl is missing (apt-get install curl)")
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-mirrors-"))
    b = Registry(work / "b")
    a = None
    try:
        kernel = work / "vmlinuz"
        kernel.write_bytes(os.urandom(1 << 20) * (SIZE >> 20))
        platform = f"linux/{arches.get(os.uname().machine).go}"
        a = Registry(work / "a")
        plan = work / "plan.hcl"
        for reg in (a, b):
            plan.write_text(f'default_target = "k"\ntarget "k" {{\n  kernel = "{reg.host}/bench/kernel:1"\n}}\n')
            assert cli(["push", "artifact", f"{reg.host}/bench/kernel:1", "--platform", platform,
                        "--kernel", str(kernel)]) == 0
            assert cli(["push", "plan", f"{reg.host}/bench/plan:1", str(plan)]) == 0
        a.stop()
        digest = "sha256:" + __import__("hashlib").sha256(kernel.read_bytes()).hexdigest()
        kernel.unlink()
        blob = f"/v2/bench/kernel/blobs/{digest}"

        _ours(f"{b.host}/bench/plan:1", work)  # warm the page cache
        cpu0 = _cpu(b.proc.pid)
        t_ours = _ours(f"{b.host}/bench/plan:1", work)
        cpu_ours = _cpu(b.proc.pid) - cpu0
        cpu0 = _cpu(b.proc.pid)
        t_curl = _curls([f"http://{b.host}{blob}"], work)
        cpu_curl = _cpu(b.proc.pid) - cpu0
        report(f"{PULLS} init pulls of {MIB:.0f} MiB (MiB/s)", PULLS * MIB / t_ours, "curl", PULLS * MIB / t_curl,
               unit="MiB/s")
        report("  registry CPU for them (s)", cpu_ours, "curl", cpu_curl)

        def dying_mirror():
            # mirror A (A's blobs, restarted) behind a proxy that kills it halfway through one kernel download
            reg = Registry(work / "a2", storage=work / "a" / "storage")
            return reg, CuttingProxy(reg.host, cut_after=SIZE // 2, on_cut=reg.kill)

        a, proxy = dying_mirror()
        t_ours = _ours(f"{proxy.host}/bench/plan:1", work, b.host)
        proxy.stop()
        a.stop()
        a, proxy = dying_mirror()
        t_curl = _curls([f"http://{proxy.host}{blob}", f"http://{b.host}{blob}"], work)
        proxy.stop()
        report("  same, first of 2 mirrors killed (MiB/s)", PULLS * MIB / t_ours, "curl||curl -C", PULLS * MIB / t_curl,
               unit="MiB/s")
    finally:
        for reg in (a, b):
            if reg is not None:
                reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pull"]:
        _pull(*sys.argv[2:5])
    else:
        main()
