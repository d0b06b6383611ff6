"""Session-wide fixtures: the test filesystem images (for portable tests, through $CLOUDBOOT_TESTDATA), and a
plain OCI registry for the unit and e2e tests."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudboot.registry.local import Registry, serving


# ---- diskfs fixtures (owned by the disk-core work; tests/portable/images.py) --------------------------------
@pytest.fixture(scope="session", autouse=True)
def testdata() -> str:
    """Filesystem images made by the real mkfs tools, built once and cached under ~/.cache/cloud-boot/test-images (per
    image, keyed by its recipe and the tool versions); portable tests find them through $CLOUDBOOT_TESTDATA."""
    from tests.portable.images import build

    path = str(build())
    os.environ["CLOUDBOOT_TESTDATA"] = path
    return path


@pytest.fixture(autouse=True)
def _openzfs_pools(request: pytest.FixtureRequest, testdata: str) -> None:
    """Tests marked `openzfs` (and the portable test_openzfs module) read the pools OpenZFS made, which
    tests/portable/images.py builds only when asked: without them they are skipped, saying how to build them."""
    from tests.portable import images

    if request.node.get_closest_marker("openzfs") and not images.openzfs_built(Path(testdata)):
        pytest.skip(images.OPENZFS_SKIP)


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name == "test_openzfs.py":  # portable: plain functions, no pytest marks of their own
            item.add_marker(pytest.mark.openzfs)
    # The tests that boot our kernels run last, so that the kernels built beside the run on first use
    # (pytest_collection_finish) are ready by then; the order is kept otherwise.
    items[:] = sorted(items, key=_wants_own_kernel)
# ---- end of diskfs fixtures --------------------------------------------------------------------------------


# ---- our kernels, built beside the tests -------------------------------------------------------------------
_kernel_build = None


def _wants_own_kernel(item: pytest.Item) -> bool:
    """Whether a test boots our kernel: its file or name says so ("our_kernel"), or a parameter is "our". A test
    that needs our kernel under another name runs early and waits for the background build (5-6 minutes of a cold
    run went so)."""
    return (item.path.name == "test_own_kernel.py" or "our_kernel" in item.name
            or re.search(r"[\[-]our[\]-]", item.name) is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the run holds tests of our kernels, start building the missing ones in the background now
    (harness/trial.prebuild_own_kernels) rather than when the first such test asks."""
    global _kernel_build
    if any(_wants_own_kernel(i) for i in session.items):
        from cloudboot.harness import trial
        from cloudboot.paths import build_dir

        _kernel_build = trial.prebuild_own_kernels(build_dir() / "kernel-prebuild.log")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A background kernel build still running when the run ends (a subset ran) is stopped, not left behind."""
    if _kernel_build is not None and _kernel_build.poll() is None:
        os.killpg(_kernel_build.pid, signal.SIGTERM)
        _kernel_build.wait()


@pytest.fixture(scope="session", autouse=True)
def zstddata() -> str:
    from tests.zstdfixtures import build

    path = str(build())
    os.environ["CLOUDBOOT_ZSTDDATA"] = path
    return path


@pytest.fixture(scope="session", autouse=True)
def httptest() -> Iterator[str]:
    """tests/httptestserver.py on 127.0.0.1; portable tests find it through $CLOUDBOOT_HTTPTEST."""
    from tests.httptestserver import HttpTestServer

    server = HttpTestServer()
    os.environ["CLOUDBOOT_HTTPTEST"] = server.address
    yield server.address
    server.shutdown()


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    """A plain (no auth) registry: Debian's docker-registry on 127.0.0.1 (tests/ociregistry.py)."""
    with serving(tmp_path_factory.mktemp("registry-plain")) as reg:
        yield reg


# Under CI the fuzz tests replay a fixed set of examples (a red CI must mean a regression, not bad luck);
# run them locally without CI set to explore new inputs.
try:
    from hypothesis import settings as _settings

    _settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        _settings.load_profile("ci")
except ImportError:  # pragma: no cover
    pass
