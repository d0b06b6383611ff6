"""Every portable test module (tests/portable/test_*.py) again under the MicroPython unix port built from the
pinned source, so the portability promise is checked, not hoped for."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloudboot.paths import MODULES_DIR, ROOT
from cloudboot.toolchain.micropython import unix_port

PORTABLE = ROOT / "tests" / "portable"
RUNNER = """
import sys
mod = __import__(sys.argv[1])
failed = 0
for name in sorted(dir(mod)):
    if name.startswith("test_"):
        try:
            getattr(mod, name)()
            print("PASS", name)
        except Exception as exc:
            failed += 1
            print("FAIL", name, repr(exc))
            sys.print_exception(exc)
sys.exit(1 if failed else 0)
"""


@pytest.mark.parametrize("module", sorted(p.stem for p in PORTABLE.glob("test_*.py")))
def test_module_under_micropython(module: str, tmp_path: Path) -> None:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "MICROPYPATH": f"{MODULES_DIR}:{PORTABLE}"}
    proc = subprocess.run([str(unix_port()), "-X", "heapsize=512M", str(runner), module], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"{module} under MicroPython:\n{proc.stdout}\n{proc.stderr}"
    assert "PASS" in proc.stdout
