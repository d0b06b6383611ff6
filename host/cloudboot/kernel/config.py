"""The kernel configuration of a variant: which fragments apply, and whether the built .config holds them.

A variant's fragments, in order: `kernel/base.config` (both variants, every arch), `kernel/net.config` (the
`cloud` variant), `kernel/<arch>.config`. They go on top of the kernel's tinyconfig, the smallest start: what
is built in is what a fragment asks for (and what that selects), not the hundreds of drivers of a defconfig.
Kconfig drops an option whose dependencies are not met without a word, so every line of every fragment is
checked against the final .config and a dropped one is an error naming its fragment and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import arches
from cloudboot.errors import CloudBootError
from cloudboot.paths import ROOT

FRAGMENTS = ROOT / "kernel"
VARIANTS = {"cloud": "the init's plan mode: network, disks and the ESP", "disk": "disk mode only: no network"}
_LINE = re.compile(r"^(CONFIG_\w+)=(.*)$|^# (CONFIG_\w+) is not set$")


@dataclass(frozen=True)
class Setting:
    """One line of a fragment: option, wanted value ('n' for `# ... is not set`), where it was written."""

    option: str
    value: str
    where: str


def fragments(arch: arches.Arch, variant: str) -> list[Path]:
    """The fragment files of (arch, variant), in the order they are merged."""
    if variant not in VARIANTS:
        raise CloudBootError(f"unknown kernel variant {variant!r}: use one of {', '.join(VARIANTS)}")
    names = ["base.config"] + (["net.config"] if variant == "cloud" else []) + [f"{arch.name}.config"]
    paths = [FRAGMENTS / n for n in names]
    for p in paths:
        if not p.is_file():
            raise CloudBootError(f"{p}: kernel config fragment missing")
    return paths


def settings(paths: list[Path]) -> dict[str, Setting]:
    """Every option the fragments set (a later fragment overrides an earlier one); a line that is neither a
    setting, a comment nor blank is an error naming its file and line."""
    out: dict[str, Setting] = {}
    for p in paths:
        for n, line in enumerate(p.read_text().splitlines(), 1):
            m = _LINE.match(line.strip())
            if m:
                option = m.group(1) or m.group(3)
                out[option] = Setting(option, m.group(2) if m.group(1) else "n", f"{p.relative_to(ROOT)}:{n}")
            elif line.strip() and not line.lstrip().startswith("#"):
                raise CloudBootError(f"{p}:{n}: not a kernel config line: {line.strip()!r}")
    return out


def read_config(text: str) -> dict[str, str]:
    """A .config's settings: {option: value}, 'n' for the `is not set` lines."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group(1) or m.group(3)] = m.group(2) if m.group(1) else "n"
    return out


def dropped(wanted: dict[str, Setting], config_text: str) -> list[str]:
    """The fragment lines the final .config does not honour, as `file:line: CONFIG_X=y (got n)`."""
    have = read_config(config_text)
    out = []
    for s in wanted.values():
        got = have.get(s.option, "n")
        if got != s.value:
            out.append(f"{s.where}: {s.option}={s.value} (the kernel's Kconfig made it {got})")
    return out
