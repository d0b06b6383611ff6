"""Plan mode as the original behaves: cloudboot.menu.timeout= / cloudboot.menu.prompt= on the kernel command
line win over the plan's menu block (REFERENCE §1.1; 0 waits forever). Driven through planmode.choose with
the console menu reading a pipe as stdin; only the registry fetch of the plan is replaced by its parsed text."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from bootplan import hcl
from cloudboot.init import planmode

PLAN = """
default_target = "one"
menu {
  timeout = "%s"
  prompt  = "plan prompt"
}
target "one" {
  kernel = "127.0.0.1:5000/boot/one:1"
}
target "two" {
  kernel = "127.0.0.1:5000/boot/two:1"
}
"""


class _Session:
    arch = "amd64"


def _choose(monkeypatch: pytest.MonkeyPatch, cmd: dict[str, str], plan_timeout: str, typed_after: float) -> str:
    """The chosen target's name; "2" + Enter arrive on stdin `typed_after` seconds into the menu."""
    monkeypatch.setattr(planmode, "fetch_plan", lambda session, ref: hcl.parse(PLAN % plan_timeout, "plan.hcl"))
    r, w = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(r, "r"))

    def type_two() -> None:
        time.sleep(typed_after)
        os.write(w, b"2\n")

    typist = threading.Thread(target=type_two, daemon=True)
    typist.start()
    try:
        return planmode.choose(dict(cmd, **{"cloudboot.plan": "127.0.0.1:5000/boot/plan:1"}), _Session(), {})["name"]
    finally:
        typist.join()
        os.close(w)


def test_cmdline_timeout_zero_waits_forever_and_prompt_wins(monkeypatch, capsys) -> None:
    name = _choose(monkeypatch, {"cloudboot.menu.timeout": "0", "cloudboot.menu.prompt": "cmdline prompt"},
                   "1s", typed_after=2.5)
    out = capsys.readouterr().out
    assert name == "two", out  # the plan's 1 s would have booted "one" before the key
    assert "cmdline prompt" in out and "plan prompt" not in out and "choice [one]: " in out


def test_cmdline_timeout_replaces_a_plan_that_waits(monkeypatch, capsys) -> None:
    name = _choose(monkeypatch, {"cloudboot.menu.timeout": "1s"}, "0", typed_after=4)
    assert name == "one"  # the plan's 0 would have waited for the "2" typed after 4 s
    out = capsys.readouterr().out
    assert "timeout: booting 'one'" in out and "plan prompt" in out
