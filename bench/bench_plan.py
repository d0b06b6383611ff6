"""`cloud-boot plan check` on plans of many targets (issue 20: 100,000 targets in under 10 s; it was quadratic).

Two lines: the CLI on 100,000 targets next to `terraform fmt` reading and printing the same HCL (HashiCorp's own
HCL parser, in Go; skipped with a note when terraform is not installed), and the portable reader and checks
in-process on 100,000 targets next to ten times their time on 10,000 (ratio near 1: linear).

`python -m bench bench_plan`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_fs_listing import CACHED, CLI
from bench.report import report

RUNS = 3
SMALL, LARGE = 10_000, 100_000


def plan_text(n: int) -> str:
    """A plan of n targets, each an OCI kernel and a cmdline (the shape of the issue's 80k-target plan)."""
    return 'default_target = "t0"\n' + "".join(f'target "t{i}" {{\n  kernel = "r/k:{i}"\n  cmdline = "quiet"\n}}\n'
                                               for i in range(n))


def _in_process(text: str) -> float:
    """Seconds to read, compile and check the plan as `plan check` does (the GC paused while the tree is built)."""
    from bootplan import hcl
    from bootplan import plan as bplan
    from cloudboot.planfile import building_tree

    t0 = time.perf_counter()
    with building_tree():
        plan = bplan.Plan(hcl.parse(text, "bench.hcl"), "bench.hcl")
    assert len(plan.check()["amd64"]) == text.count('\ntarget "')
    return time.perf_counter() - t0


def _timed(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-plan-"))
    try:
        path = work / "large.hcl"
        path.write_text(plan_text(LARGE))
        cli = [*CLI, "plan", "check", str(path)]
        t_cli = statistics.median(_timed(cli, env=CACHED) for _ in range(RUNS))
        terraform = shutil.which("terraform")
        if terraform:
            rc = work / "terraformrc"
            rc.write_text("")
            env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "CHECKPOINT_DISABLE": "1"}
            runs = []
            for _ in range(RUNS):
                with open(path, "rb") as f:
                    runs.append(_timed([terraform, "fmt", "-"], stdin=f, env=env, stderr=subprocess.DEVNULL))
            t_ref = statistics.median(runs)
            report(f"plan check, {LARGE:,} targets (s)", t_cli, "terraform fmt", t_ref)
        else:
            print(f"plan check, {LARGE:,} targets: {t_cli:.3f} s (terraform not installed: no reference)")
        small = statistics.median(_in_process(plan_text(SMALL)) for _ in range(RUNS))
        large = statistics.median(_in_process(plan_text(LARGE)) for _ in range(RUNS))
        report(f"parse+check {LARGE:,} targets (s)", large, f"10 x {SMALL:,}", 10 * small)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
