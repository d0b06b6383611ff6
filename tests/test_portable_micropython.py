"""Every portable test module (tests/portable/test_*.py) again under the MicroPython unix port built from the
pinned source, so the portability promise is checked, not hoped for.

Portable tests are plain `def test_*()` functions with bare asserts (no pytest import; data files come through
$CLOUDBOOT_TESTDATA, set by tests/conftest.py). Each module runs in its own MicroPython process with
MICROPYPATH=firmware/modules:tests/portable; the modules run in parallel (one per core) and each pytest case
waits for its module. A failure names every failing test with its traceback; a hang names the test running.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cloudboot.paths import MODULES_DIR, ROOT
from cloudboot.toolchain.micropython import unix_port

PORTABLE = ROOT / "tests" / "portable"
TIMEOUT = float(os.environ.get("CLOUDBOOT_MP_TIMEOUT", "600"))  # seconds per module
# The runner itself is portable Python: it runs under MicroPython (it has only `time.ticks_ms`) and CPython.
RUNNER = r'''
import sys
import time


def _ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.time() * 1000)


def main(modname, pattern):
    try:
        mod = __import__(modname)
    except Exception as exc:
        print("FAIL <import %s>" % modname)
        sys.print_exception(exc)
        print("SUMMARY 0 1")
        sys.exit(1)
    names = sorted(n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n)))
    failed = 0
    for name in names:
        if pattern and pattern not in name:
            continue
        print("RUN", name)
        t0 = _ms()
        try:
            getattr(mod, name)()
        except Exception as exc:
            failed += 1
            print("FAIL", name, "(%d ms)" % (_ms() - t0))
            sys.print_exception(exc)
        else:
            print("PASS", name, "(%d ms)" % (_ms() - t0))
    print("SUMMARY", len(names), failed)
    sys.exit(1 if failed else 0)


main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
'''
MODULES = sorted(p.stem for p in PORTABLE.glob("test_*.py"))


class _Runs:
    """Starts every module's MicroPython process (at most one per core at a time) on first use."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[int | None, str, float]] = {}
        self.done = threading.Condition()
        self.started = False

    def start(self, runner: Path, modules: list[str]) -> None:
        if self.started:
            return
        self.started = True
        exe = str(unix_port())
        env = {**os.environ, "MICROPYPATH": f"{MODULES_DIR}:{PORTABLE}"}
        sem = threading.Semaphore(max(1, os.cpu_count() or 1))
        pattern = os.environ.get("CLOUDBOOT_MP_TESTS", "")

        def one(module: str) -> None:
            with sem:
                t0 = time.monotonic()
                try:
                    proc = subprocess.run([exe, "-X", "heapsize=768M", str(runner), module, pattern],
                                          capture_output=True, text=True, env=env, timeout=TIMEOUT,
                                          cwd=str(ROOT))
                    result = (proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0)
                except subprocess.TimeoutExpired as exc:
                    out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                    result = (None, out, time.monotonic() - t0)
            with self.done:
                self.results[module] = result
                self.done.notify_all()

        for module in modules:
            threading.Thread(target=one, args=(module,), daemon=True).start()

    def wait(self, module: str) -> tuple[int | None, str, float]:
        with self.done:
            while module not in self.results:
                self.done.wait()
            return self.results[module]


_RUNS = _Runs()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, testdata: str) -> Path:
    path = tmp_path_factory.mktemp("mprunner") / "mprunner.py"
    path.write_text(RUNNER)
    from tests.portable.images import openzfs_built

    _RUNS.start(path, [m for m in MODULES if m != "test_openzfs" or openzfs_built(Path(testdata))])
    return path


@pytest.mark.parametrize("module", [pytest.param(m, marks=[pytest.mark.openzfs] if m == "test_openzfs" else [])
                                    for m in MODULES])
def test_module_under_micropython(module: str, runner: Path) -> None:
    code, out, seconds = _RUNS.wait(module)
    lines = out.splitlines()
    if code is None:
        running = [ln[4:] for ln in lines if ln.startswith("RUN ")]
        pytest.fail(f"{module} under MicroPython: timed out after {seconds:.0f}s in "
                    f"{running[-1] if running else '<import>'}:\n{out}")
    failed = [ln.split()[1] for ln in lines if ln.startswith("FAIL ")]
    summary = [ln for ln in lines if ln.startswith("SUMMARY ")]
    assert code == 0 and not failed and summary, (
        f"{module} under MicroPython (exit {code}, {seconds:.1f}s): failing: {', '.join(failed) or '?'}\n{out}")
    assert any(ln.startswith("PASS ") for ln in lines), f"{module}: no test ran under MicroPython:\n{out}"
