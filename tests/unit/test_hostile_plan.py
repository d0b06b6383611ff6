"""Hostile plans through `cloud-boot plan`: bombs (strings, lists and replacements that double, values compared
element by element, chains of locals, nesting) stop at a plan limit with one line, and `plan check` of each stays
under 256 MiB of address space (RLIMIT_AS on the process, not a timing); numbers, NaN, nesting and references
that used to crash or pass; the HCL reader and plan check linear in the number of targets (counted operations;
bench/bench_plan.py times them); plan strings escaped before the terminal."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bootplan import PlanError
from bootplan import plan as bplan
from tests.unit.hostile import cli, ok, refused

MEMORY = 256 << 20


def _doubling(expr: str, n: int = 63, base: str = '"ab"', use: str = "") -> str:
    """A plan whose local p{i} is `expr` of p{i-1}, n times, used by one target's label (by default every local in
    order, so the evaluation never nests deeply: what stops the bomb is the size of what it makes)."""
    every = ", ".join(f"local.p{i}" for i in range(1, n + 1))
    lines = ["locals {", f"  p0 = {base}"]
    lines += [f"  p{i} = " + expr.format(prev=f"local.p{i - 1}") for i in range(1, n + 1)]
    lines += ["}", 'target "a" {', '  kernel = "r/k:1"',
              "  label = " + (use.format(n=n) if use else f'length([{every}]) > 0 ? "a" : "b"'), "}", ""]
    return "\n".join(lines)


BOMBS = {
    # the 2 KB plan: a string that doubles 63 times (24 GB and an OOM kill before), used as it was (only
    # the last local: the evaluation recurses through all 63) and in order
    "template-last": (_doubling('"${{{prev}}}${{{prev}}}"', use="local.p{n}"), ("depth=", "value=")),
    "template": (_doubling('"${{{prev}}}${{{prev}}}"'), ("value=",)),
    "concat": (_doubling("concat({prev}, {prev})", base='["ab"]'), ("value=",)),
    "replace": (_doubling('replace({prev}, "a", {prev})', base='"aab"'), ("value=",)),
    "join": (_doubling('join({prev}, [{prev}, {prev}, {prev}])'), ("value=",)),
    # a list that doubles by sharing (little memory) and is then compared element by element (2^60 steps)
    "shared-list": (_doubling("[{prev}, {prev}]", n=60), ("value=",)),
    # a million one-character strings from split()
    "split": (_doubling('"${{{prev}}}${{{prev}}}"', n=20, use='length(split("", local.p{n})) > 0 ? "a" : "b"'),
              ("value=",)),
    # many values just under the value limit: the evaluation's memory is bounded too
    "memory": ("locals {\n  p0 = \"ab\"\n" + "".join(f'  p{i} = "${{local.p{i - 1}}}${{local.p{i - 1}}}"\n'
                                                     for i in range(1, 19))
               + "".join(f'  m{i} = "${{local.p18}}{i}"\n' for i in range(300))
               + "}\n" + 'target "a" {\n  kernel = "r/k:1"\n  label = join(",", ['
               + ", ".join(f"local.m{i}" for i in range(300)) + "])\n}\n", ("memory=",)),
    # a chain of locals 3000 long (a RecursionError before)
    "chain": ("locals {\n  l0 = \"x\"\n" + "".join(f"  l{i} = local.l{i - 1}\n" for i in range(1, 3000))
              + "}\n" + 'target "a" {\n  kernel = "r/k:1"\n  label = local.l2999\n}\n', ("depth=",)),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_plans_stop_at_a_limit_within_256_mib(name: str, tmp_path: Path) -> None:
    text, limits = BOMBS[name]
    path = tmp_path / f"{name}.hcl"
    path.write_text(text)
    assert len(text) < 64 << 10
    line = refused(cli("plan", "check", str(path), limits={resource.RLIMIT_AS: MEMORY}, timeout=300),
                   "over the plan limit ", "--limit")
    assert [x for x in limits if "over the plan limit " + x in line], line
    assert re.search(re.escape(f"cloud-boot: error: {path}:") + r"\d+: ", line), line  # the plan line


def test_a_limit_can_be_raised_and_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "p.hcl"
    path.write_text(_doubling('"${{{prev}}}${{{prev}}}"', n=20))  # 2 MiB: over the default value limit
    refused(cli("plan", "check", str(path)), "over the plan limit value=1048576")
    assert "ok, 1 target(s)" in ok(cli("plan", "check", str(path), "--limit", "value=8M"))
    refused(cli("plan", "check", str(path), "--limit", "value=-1"), "plan limit value must be a whole number")
    refused(cli("plan", "check", str(path), "--limit", "speed=1"), 'unknown plan limit "speed"')
    helptext = ok(cli("plan", "check", "--help"))
    for name in ("value=", "memory=", "depth=", "targets=", "steps=", "nodes="):
        assert name in helptext


def test_the_targets_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.hcl"
    path.write_text("".join(f'target "t{i}" {{\n  kernel = "r/k:{i}"\n}}\n' for i in range(50)))
    refused(cli("plan", "check", str(path), "--limit", "targets=10"), "50 targets: over the plan limit targets=10")


CRASHES = {
    # (file name, text, what the one line says)
    "digits": ("d.hcl", 'target "a" {\n  kernel = "r/k:1"\n  label = "${' + "9" * 5000 + '}"\n}\n',
               "out of range"),
    "digits-attr": ("e.hcl", 'target "a" {\n  kernel = "r/k:1"\n  label = [1][0].' + "9" * 5000 + '\n}\n',
                    "out of range"),
    "big-product": ("p.hcl", "locals {\n  a = 3037000500\n  b = local.a * local.a * local.a\n}\n"
                    'target "a" {\n  kernel = "r/k:1"\n  label = "${local.b}"\n}\n', "out of range"),
    "nested-hcl-blocks": ("n.hcl", "a {\n" * 5000 + "}\n" * 5000, "nested deeper"),
    "nested-hcl-expression": ("x.hcl", 'target "a" {\n  kernel = "r/k:1"\n  label = ' + "[" * 5000 + "]" * 5000
                              + "\n}\n", "nested too deeply"),
    "nested-json": ("j.json", "[" * 100000 + "]" * 100000, "nested too deeply"),
    "nan-line": ("nan.json", '{"format": "cloud-boot.plan.v1", "attrs": {"default_target": {"line": NaN, "expr": '
                 '"\\"zz\\""}}, "blocks": [{"type": "target", "labels": ["a"], "line": 2, "attrs": {"kernel": '
                 '{"line": 3, "expr": "\\"r/k:1\\""}}}]}', "NaN is not JSON"),
    "bad-reference": ("r.hcl", 'target "a" {\n  index = "::::@@@"\n}\n', 'index "::::@@@" is not an OCI reference'),
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_malformed_plans_are_one_line(case: str, tmp_path: Path) -> None:
    """Deep nesting (blocks, expressions, JSON) among them: within 256 MiB too."""
    name, text, want = CRASHES[case]
    path = tmp_path / name
    path.write_text(text)
    refused(cli("plan", "check", str(path), limits={resource.RLIMIT_AS: MEMORY}, timeout=300), want)


def _repeat(item: str, n: int) -> str:
    return 'target "a" {\n  kernel = "r/k:1"\n  label = length([' + (item + ",") * n + ']) > 0 ? "a" : "b"\n}\n'


def test_a_plan_that_repeats_a_construct_a_million_times_stops_at_the_nodes_limit(tmp_path: Path) -> None:
    """Reading a plan takes memory in proportion to its nodes: a list of 1.2 million elements (2.4 MB of text, a
    tree of hundreds of MB) stops at `nodes` on its line within 256 MiB; in the parsed JSON form too."""
    path = tmp_path / "repeat.hcl"
    path.write_text(_repeat("1", 1_200_000))
    refused(cli("plan", "check", str(path), limits={resource.RLIMIT_AS: MEMORY}, timeout=300),
            f"{path}:3: target \"a\": over the plan limit nodes=1000000", "--limit nodes=N")
    parsed = tmp_path / "repeat.json"
    attrs = {"kernel": {"line": 2, "expr": '"r/k:1"'}, "label": {"line": 3, "expr": "[" + "1," * 1_200_000 + "]"}}
    parsed.write_text(json.dumps({"format": bplan.FORMAT,
                                  "blocks": [{"type": "target", "labels": ["a"], "line": 1, "attrs": attrs}]}))
    refused(cli("plan", "check", str(parsed), limits={resource.RLIMIT_AS: MEMORY}, timeout=300),
            f"{parsed}:3: target \"a\": over the plan limit nodes=1000000")


# A verb that takes memory until there is none: what a plan whose limits were raised past the machine's does. (A
# real such plan under RLIMIT_AS is no test: CPython then sometimes spins unwinding its parser's frames, a
# traceback object at a time, when even those cannot be allocated.)
GREEDY = ("import cloudboot.commands.plan as m\n"
          "def greedy(args):\n"
          "    held = []\n"
          "    while True:\n"
          "        held.append(bytearray(1 << 20))\n"
          "m._check = greedy\n"
          "from cloudboot.cli import main\n"
          "raise SystemExit(main())\n")


def test_out_of_memory_is_one_line_once_the_memory_is_free() -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    proc = subprocess.run([sys.executable, "-c", GREEDY, "plan", "check", "x.hcl"], capture_output=True, timeout=120,
                          preexec_fn=limit)
    line = refused(proc, "out of memory", "--limit")
    assert "internal error" not in line

def test_plan_strings_are_escaped_on_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "esc.hcl"
    path.write_text('target "a" {\n  kernel = "r/k:1"\n  label = "red \\u001b[31m\\u202eevil\\nline"\n}\n')
    out = ok(cli("plan", "render", str(path), "--arch", "amd64"))
    assert "\x1b" not in out and "\u202e" not in out and "red \\e[31m\\u202eevil\\nline" in out, out
    data = json.loads(ok(cli("plan", "render", str(path), "--arch", "amd64", "--json")))
    assert data["label"] == "red \x1b[31m\u202eevil\nline"  # JSON carries the value itself, escaped by JSON


class Counted(str):
    """A target name whose comparisons are counted (a list scan compares every element: quadratic)."""

    calls = 0

    def __eq__(self, other: object) -> bool:
        Counted.calls += 1
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        return str.__hash__(self)


def _work(n: int) -> int:
    """Python-level calls plus name comparisons made by Plan(...).check() of a plan of n targets."""
    parsed = {"format": bplan.FORMAT, "attrs": {"default_target": {"line": 1, "expr": '"t0"'}}, "blocks": [
        {"type": "target", "labels": [Counted(f"t{i}")], "line": i + 1,
         "attrs": {"kernel": {"line": i + 1, "expr": f'"r/k:{i}"'}, "cmdline": {"line": i + 1, "expr": '"quiet"'}}}
        for i in range(n)]}
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event == "call":
            calls += 1

    Counted.calls = 0
    sys.setprofile(count)
    try:
        bplan.Plan(parsed).check()
    finally:
        sys.setprofile(None)
    return calls + Counted.calls


def test_plan_check_is_linear_in_the_number_of_targets() -> None:
    small, large = _work(2000), _work(8000)
    assert large < 4.5 * small, (small, large)


def _parse_work(n: int) -> int:
    """Python-level calls made by hcl.parse of an n-target plan (plain labels and strings, expressions, templates,
    comments, a one-line block): the reader must not rescan what it has read."""
    from bootplan import hcl

    text = "# many targets\nlocals {\n  q = \"quiet\"\n}\n" + "".join(
        f'target "t{i}" {{\n  kernel = "r/k:{i}"  # a comment\n  cmdline = ["${{local.q}} {i}", local.q]\n'
        f'  label = "n${{"i"}}"\n  disk {{ fs = "ext4" }}\n}}\n' for i in range(n))
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        parsed = hcl.parse(text)
    finally:
        sys.setprofile(None)
    assert len(parsed["blocks"]) == n + 1
    return calls


def test_hcl_reading_is_linear_in_the_number_of_targets() -> None:
    small, large = _parse_work(2000), _parse_work(8000)
    assert large < 4.2 * small, (small, large)


def test_check_evaluates_a_target_that_depends_on_nothing_once() -> None:
    from bootplan.expr import Limits

    parsed = {"format": bplan.FORMAT, "attrs": {"default_target": {"line": 1, "expr": '"t0"'}}, "blocks": [
        {"type": "target", "labels": [f"t{i}"], "line": 1, "attrs": {"kernel": {"line": 1, "expr": f'"r/k:{i}"'}}}
        for i in range(100)]}
    # 100 targets of one node each and the default: 101 steps in the first pass, 1 in each after; 100 are too few.
    bplan.Plan(parsed, limits=Limits(steps=101)).check()
    with pytest.raises(PlanError, match="steps=100"):
        bplan.Plan(parsed, limits=Limits(steps=100)).check()
