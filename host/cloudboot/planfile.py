"""Plan files on the host: read (HCL, or the parsed form as .json), parsed and checked, and the target a
machine would boot from one. Failures are PlanError (file and line) or CloudBootError naming the file."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from pathlib import Path

from bootplan import PlanError, hcl
from bootplan import plan as bplan
from bootplan.expr import MAX_INT, Limits
from cloudboot.errors import CloudBootError
from cloudboot.image.output import read_input

PLAN_MAX = 64 << 20  # bytes of a plan file (100,000 targets take about 7 MiB)


def read_text(path: Path) -> tuple[bytes, str]:
    """(bytes, text) of a plan file; CloudBootError when it cannot be read or is not UTF-8."""
    raw = read_input(path, "plan", PLAN_MAX)
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CloudBootError(f"plan {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (plans have no NaN or infinite numbers)")


def _json_int(text: str) -> int:
    """A JSON whole number within the plan language's range (checked before int(): CPython refuses 4300 digits)."""
    if len(text.lstrip("-").lstrip("0")) > 19 or not -MAX_INT - 1 <= int(text) <= MAX_INT:
        clipped = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"number {clipped} out of range (whole numbers go up to {MAX_INT})")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} out of range")
    return value


@contextlib.contextmanager
def building_tree() -> Iterator[None]:
    """Reading a plan builds a large tree without cycles, and CPython's cyclic collector passing over it again and
    again cost more than the reading (100,000 targets: 7 s to read, 3 s without it): paused while it is built,
    then the tree is kept out of later passes (gc.freeze)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def read_plan(path: Path, limits: Limits | None = None) -> dict:
    """A plan file (HCL, or the parsed form as .json) -> its parsed form, schema checked (within `limits`)."""
    with building_tree():
        parsed = _parse(path, limits)
        bplan.Plan(parsed, str(path), limits)
    return parsed


def load_plan(path: Path, limits: Limits | None = None) -> bplan.Plan:
    """A plan file -> its compiled Plan (the schema checked once, within `limits`)."""
    with building_tree():
        return bplan.Plan(_parse(path, limits), str(path), limits)


def _parse(path: Path, limits: Limits | None = None) -> dict:
    """A plan file's parsed form, not yet checked (HCL read within the `nodes` limit of `limits`)."""
    _, text = read_text(path)
    if path.suffix != ".json":
        parsed = hcl.parse(text, str(path), limits)
    else:
        try:
            parsed = json.loads(text, parse_constant=_no_constant, parse_int=_json_int, parse_float=_json_float)
        except RecursionError:
            raise PlanError("not a plan: JSON nested too deeply", file=str(path)) from None
        except ValueError as exc:
            raise PlanError(f"not JSON: {exc}", file=str(path)) from None
    return parsed


def for_push(path: Path) -> tuple[bytes, dict]:
    """(the HCL bytes, the parsed form) of a plan about to be pushed, checked in full first."""
    raw, text = read_text(path)
    try:
        parsed = hcl.parse(text, path.name)
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


def parse_limits(items: list[str]) -> Limits:
    """`--limit NAME=N` options (N may end in K, M or G) -> the Limits in force."""
    return Limits.parse(",".join(items))


def render_target(path: Path, arch: str, target: str = "", lldp: dict[str, str] | None = None,
                  limits: Limits | None = None) -> dict:
    """The target a machine of `arch` boots from the plan at `path` (selection of REFERENCE §2.3 without a
    menu), fully resolved."""
    plan = load_plan(path, limits)
    return bplan.render(plan, arch, target=target, lldp=lldp or {}, menu="0")
