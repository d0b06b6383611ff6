"""`cloud-boot plan`: check a boot plan, or show what a machine would boot from it.

    cloud-boot plan check plans/*.hcl
    cloud-boot plan render plans/production.hcl --arch arm64 --lldp port_id=Eth1 [--target NAME] [--json]
    cloud-boot plan parse plans/production.hcl      # the parsed form (JSON) the firmware evaluates
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bootplan import PlanError
from bootplan import plan as bplan
from cloudboot.cliopts import add_arch
from cloudboot.errors import CloudBootError


def read_plan(path: Path) -> dict:
    """A plan file (HCL, or the parsed form as .json) -> parsed form; every problem is a CloudBootError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CloudBootError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CloudBootError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        if path.suffix == ".json":
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise PlanError(f"not JSON: {exc}", file=str(path)) from None
            bplan.Plan(parsed, str(path))
            return parsed
        return bplan.load(text, str(path))
    except PlanError as exc:
        raise CloudBootError(str(exc)) from None


def parse_lldp(items: list[str]) -> dict[str, str]:
    """`key=value` pairs from --lldp into the lldp object's fields."""
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
    parsed = read_plan(path)
    try:
        return bplan.render(parsed, arch, target=target, lldp=lldp or {}, menu="0")
    except PlanError as exc:
        raise CloudBootError(str(exc)) from None


def _check(args: argparse.Namespace) -> int:
    for path in args.files:
        parsed = read_plan(path)
        try:
            plan = bplan.Plan(parsed, str(path))
            by_arch = plan.check()
        except PlanError as exc:
            raise CloudBootError(str(exc)) from None
        names = plan.names()
        archs = ", ".join(by_arch) or "no arch"
        print(f"{path}: ok, {len(names)} target(s) ({', '.join(names)}) for {archs}")
    return 0


def _render(args: argparse.Namespace) -> int:
    t = render_target(args.file, args.arch.go, args.target or "", parse_lldp(args.lldp))
    if args.json:
        print(json.dumps(t, indent=2))
        return 0
    rows = [("target", t["name"]), ("arch", t["arch"] or "any"), ("version", t["version"]), ("label", t["label"]),
            ("source", t["source"])]
    rows += [(f, t[f]) for f in ("index", "kernel", "initrd", "modules", "subplan")]
    if t["disk"]:
        rows += [("disk." + k, v) for k, v in t["disk"].items()]
    rows.append(("cmdline", t["cmdline"]))
    for key, value in rows:
        if value:
            print(f"{key:<12} {value}")
    return 0


def _parse(args: argparse.Namespace) -> int:
    print(json.dumps(read_plan(args.file), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="check a boot plan (HCL) or show the target a machine would boot")
    verbs = p.add_subparsers(dest="plan_verb", metavar="SUBCOMMAND", required=True)
    c = verbs.add_parser("check", help="syntax, references, types and the one-source rule, for every arch")
    c.add_argument("files", type=Path, nargs="+", metavar="FILE")
    c.set_defaults(func=_check)
    r = verbs.add_parser("render", help="the selected target, fully resolved")
    r.add_argument("file", type=Path, metavar="FILE")
    add_arch(r, "the machine's architecture", required=True)
    r.add_argument("--target", help="target name (as cloudboot.target=); default: default_target")
    r.add_argument("--lldp", action="append", default=[], metavar="KEY=VALUE",
                   help=f"what LLDP saw ({', '.join(bplan.LLDP_KEYS)}); repeatable")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=_render)
    d = verbs.add_parser("parse", help="print the parsed form (JSON) that the firmware evaluates")
    d.add_argument("file", type=Path, metavar="FILE")
    d.set_defaults(func=_parse)
