"""Plan files on the host: read (HCL, or the parsed form as .json), parsed and checked, and the target a
machine would boot from one. Failures are PlanError (file and line) or CloudBootError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

from bootplan import PlanError
from bootplan import plan as bplan
from cloudboot.errors import CloudBootError
from cloudboot.image.output import read_input


def read_text(path: Path) -> tuple[bytes, str]:
    """(bytes, text) of a plan file; CloudBootError when it cannot be read or is not UTF-8."""
    raw = read_input(path, "plan")
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CloudBootError(f"plan {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_plan(path: Path) -> dict:
    """A plan file (HCL, or the parsed form as .json) -> its parsed form, schema checked."""
    _, text = read_text(path)
    if path.suffix != ".json":
        return bplan.load(text, str(path))
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"not JSON: {exc}", file=str(path)) from None
    bplan.Plan(parsed, str(path))
    return parsed


def for_push(path: Path) -> tuple[bytes, dict]:
    """(the HCL bytes, the parsed form) of a plan about to be pushed, checked in full first."""
    raw, text = read_text(path)
    try:
        parsed = bplan.load(text, path.name)
        bplan.check(parsed, path.name)
    except PlanError as exc:
        raise CloudBootError(f"not pushing an invalid plan: {exc}") from None
    return raw, parsed


def parse_lldp(items: list[str]) -> dict[str, str]:
    """`key=value` pairs (`plan render --lldp`) into the lldp object's fields."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in bplan.LLDP_KEYS:
            raise CloudBootError(f"--lldp {item!r}: expected KEY=VALUE with KEY one of {', '.join(bplan.LLDP_KEYS)}")
        out[key] = value
    return out


def render_target(path: Path, arch: str, target: str = "", lldp: dict[str, str] | None = None) -> dict:
    """The target a machine of `arch` boots from the plan at `path` (selection of REFERENCE §2.3 without a
    menu), fully resolved."""
    return bplan.render(read_plan(path), arch, target=target, lldp=lldp or {}, menu="0")
