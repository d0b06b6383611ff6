"""`cloud-boot plan`: check a boot plan, or show what a machine would boot from it.

    cloud-boot plan check plans/*.hcl
    cloud-boot plan render plans/production.hcl --arch arm64 --lldp port_id=Eth1 [--target NAME] [--json]
    cloud-boot plan parse plans/production.hcl      # the parsed form (JSON) the firmware evaluates
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bootplan import plan as bplan
from cloudboot.cliopts import add_arch, add_json, add_verb, add_verb_group, print_json
from cloudboot.planfile import parse_lldp, read_plan, render_target


def _check(args: argparse.Namespace) -> int:
    """Check each plan in full, for every arch and with and without LLDP; the first problem is reported with
    its file and line."""
    for path in args.files:
        plan = bplan.Plan(read_plan(path), str(path))
        by_arch = plan.check()
        names = plan.names()
        archs = ", ".join(by_arch) or "no arch"
        print(f"{path}: ok, {len(names)} target(s) ({', '.join(names)}) for {archs}")
    return 0


def _render(args: argparse.Namespace) -> int:
    """The target a machine would boot from the plan (REFERENCE §2.3, without a menu), with every expression
    evaluated."""
    t = render_target(args.file, args.arch.go, args.target or "", parse_lldp(args.lldp))
    if args.json:
        print_json(t)
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
    """Print the plan's parsed form: the JSON that `push plan` ships beside the HCL so the firmware never parses
    HCL (the output is JSON itself)."""
    print_json(read_plan(args.file))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verb_group(sub, "plan", "check a boot plan (HCL) or show the target a machine would boot",
                           "Boot plans (REFERENCE §2): check them, render the target a machine would boot, or "
                           "print the parsed form the firmware evaluates.", "SUBCOMMAND")
    c = add_verb(verbs, "check", _check, "syntax, references, types and the one-source rule, for every arch")
    c.add_argument("files", type=Path, nargs="+", metavar="FILE", help="plan files (HCL, or parsed .json)")
    r = add_verb(verbs, "render", _render, "the selected target, fully resolved")
    r.add_argument("file", type=Path, metavar="FILE", help="the plan (HCL, or parsed .json)")
    add_arch(r, "the machine's architecture", required=True)
    r.add_argument("--target", help="target name (as cloudboot.target=); default: default_target")
    r.add_argument("--lldp", action="append", default=[], metavar="KEY=VALUE",
                   help=f"what LLDP saw ({', '.join(bplan.LLDP_KEYS)}); repeatable")
    add_json(r)
    d = add_verb(verbs, "parse", _parse, "print the parsed form (JSON) that the firmware evaluates")
    d.add_argument("file", type=Path, metavar="FILE", help="the plan (HCL)")
