"""One kernel build at a time per cache (kernel.build holds a lock while it builds), while a kernel already in
the cache is handed out at once, whatever is building: the tests' background build (harness/trial's
prebuild_own_kernels) relies on both."""

from __future__ import annotations

import fcntl
import json
import threading
from pathlib import Path

import pytest

from cloudboot.kernel import build as kbuild


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache whose x86_64 cloud kernel is built and whose aarch64 one is not; _build records its calls."""
    monkeypatch.setenv("CLOUDBOOT_CACHE", str(tmp_path))
    monkeypatch.setattr(kbuild.buildroot, "exists", lambda: True)
    monkeypatch.setattr(kbuild, "_inputs", lambda arch, variant: (tmp_path / "kernel" / f"{arch}-{variant}",))
    done = tmp_path / "kernel" / "x86_64-cloud"
    done.mkdir(parents=True)
    (done / "build.json").write_text(json.dumps({"arch": "x86_64"}))
    return tmp_path


def _hold_lock(cache: Path):
    f = open(cache / "kernel" / ".lock", "w")  # held until the test closes it
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_a_cached_kernel_does_not_wait_for_a_build(cache: Path) -> None:
    with _hold_lock(cache):
        assert kbuild.build("x86_64", "cloud").info == {"arch": "x86_64"}


def test_a_build_waits_for_the_one_running(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    built = []
    monkeypatch.setattr(kbuild, "_build", lambda arch, variant, jobs, rebuild: built.append(arch) or arch)
    holder = _hold_lock(cache)
    worker = threading.Thread(target=lambda: kbuild.build("aarch64", "cloud"))
    worker.start()
    worker.join(0.5)
    assert worker.is_alive() and built == []  # blocked behind the holder
    holder.close()
    worker.join(10)
    assert built == ["aarch64"]
    assert "waiting for the build that holds" in capsys.readouterr().err
