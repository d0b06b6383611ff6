"""Session-wide fixtures: the test filesystem images (for portable tests, through $CLOUDBOOT_TESTDATA)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def testdata() -> str:
    from tests.diskimages import build

    path = str(build())
    os.environ["CLOUDBOOT_TESTDATA"] = path
    return path
