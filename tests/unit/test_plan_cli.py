"""Plans from HCL text (python-hcl2, CPython only) and `cloud-boot plan check|render|parse`: the example
plans, located errors for malformed plans, and fuzzing of the expression parser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootplan import PlanError
from bootplan import plan as bplan
from bootplan.expr import Expr, Scope
from cloudboot.cli import main
from tests.unit.plan_fixtures_gen import FIXTURES, ROOT, render_fixtures

PLANS = sorted((ROOT / "plans").glob("*.hcl"))


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "bad.hcl") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fixtures_are_the_parsed_example_plans() -> None:
    assert FIXTURES.read_text() == render_fixtures(), \
        "plans/ changed: regenerate with .venv/bin/python -m tests.unit.plan_fixtures_gen"


def test_the_five_shapes_are_there() -> None:
    names = {p.stem for p in PLANS}
    assert {"production", "qemu-smoke", "disk-label", "zfs", "subplan"} <= names


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_example_plan_checks(path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "plan", "check", path)
    assert code == 0, err
    assert ": ok," in out


def test_render_acceptance(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "plan", "render", ROOT / "plans/production.hcl", "--arch", "arm64",
                         "--lldp", "port_id=Eth1", "--json")
    assert code == 0, err
    t = json.loads(out)
    assert t["name"] == "primary" and t["source"] == "oci"
    assert "hostname=node-Eth1" in t["cmdline"] and "console=ttyAMA0" in t["cmdline"]
    code, out, err = run(capsys, "plan", "render", ROOT / "plans/production.hcl", "--arch", "x86_64",
                         "--target", "rescue")
    assert code == 0, err
    assert "index        127.0.0.1:5000/boot/rescue:latest" in out
    code, out, err = run(capsys, "plan", "render", ROOT / "plans/disk-label.hcl", "--arch", "amd64")
    assert "disk.device  LABEL=cloudimg-rootfs" in out


def test_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "cloud-boot"
    proc = subprocess.run([str(exe), "plan", "render", str(ROOT / "plans/qemu-smoke.hcl"), "--arch", "arm64",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["index"] == "10.0.2.2:5000/boot/alpine:3.21"


def test_parse_then_render_the_parsed_form(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "plan", "parse", ROOT / "plans/zfs.hcl")
    assert code == 0
    parsed = write(tmp_path, out, "zfs.json")
    code, out, err = run(capsys, "plan", "render", parsed, "--arch", "amd64", "--json")
    assert code == 0, err
    assert json.loads(out)["disk"]["fs"] == "zfs"


GOOD_TARGET = 'target "a" {\n  index = "r/a:1"\n}\n'

BAD = {
    "syntax": ('default_target = "a"\n' + GOOD_TARGET + 'target "b" {\n  index = "x"\n', "bad.hcl:", "syntax error"),
    "syntax-token": ('target "a" {\n  index = "r" "s"\n}\n', "bad.hcl:2:", "syntax error"),
    "unknown-reference": (GOOD_TARGET + 'target "b" {\n  index = "${registry}/b"\n}\n',
                          'bad.hcl:5: target "b": unknown variable "registry"', ""),
    "unknown-local": ('locals {\n  r = "x"\n}\n' + 'target "a" {\n  index = local.registry\n}\n',
                      'bad.hcl:5: target "a": no local "registry" (locals: r)', ""),
    "cycle": ('locals {\n  a = "${local.b}/x"\n  b = local.a\n}\n' + GOOD_TARGET,
              "bad.hcl:2: locals form a cycle: local.a -> local.b -> local.a", ""),
    "wrong-type": ('target "a" {\n  index = "r"\n  label = 3\n}\n',
                   'bad.hcl:3: target "a": label must be a string, got number', ""),
    "wrong-type-cmdline": ('target "a" {\n  index = "r"\n  cmdline = ["a", true]\n}\n',
                           'bad.hcl:3: target "a": cmdline element 2 must be a string, got bool', ""),
    "two-sources": ('target "a" {\n  kernel = "r/k"\n  disk {\n    device = "/dev/vda2"\n  }\n}\n',
                    'bad.hcl:1: target "a": two sources (kernel and disk)', ""),
    "no-source": ('target "a" {\n  label = "nothing"\n}\n', 'bad.hcl:1: target "a": no source', ""),
    "unknown-default": ('default_target = "b"\n' + GOOD_TARGET,
                        'bad.hcl:1: default_target "b" names no target (targets: a)', ""),
    "unknown-attribute": ('target "a" {\n  index = "r"\n  kernal = "k"\n}\n',
                          'bad.hcl:3: target "a": unknown attribute "kernal"', ""),
    "duplicate-attribute": ('target "a" {\n  index = "r"\n  index = "s"\n}\n',
                            'bad.hcl:3: target "a": attribute "index" is set twice (first on line 2)', ""),
    "expression-syntax": ('target "a" {\n  index = "r"\n  cmdline = [for w in ["a"] : w]\n}\n',
                          'bad.hcl:3: target "a": for expressions are not supported', ""),
    "label-not-plain": ('target "a${1}" {\n  index = "r"\n}\n', "bad.hcl:1: ", ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_plans_give_one_located_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text, start, contains = BAD[case]
    path = write(tmp_path, text)
    code, out, err = run(capsys, "plan", "check", path)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    message = lines[0].removeprefix("cloud-boot: error: ").replace(str(tmp_path) + "/", "")
    assert message.startswith(start), message
    assert contains in message, message


def test_render_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, 'default_target = "a"\ntarget "a" {\n  arch = "amd64"\n  index = "r"\n}\n')
    code, _, err = run(capsys, "plan", "render", path, "--arch", "arm64")
    assert code == 1
    assert err.strip().endswith('bad.hcl:1: no target "a" for arch arm64 (it is for amd64)'), err
    code, _, err = run(capsys, "plan", "render", path, "--arch", "amd64", "--target", "zz")
    assert code == 1 and 'no target "zz" (targets: a)' in err
    code, _, err = run(capsys, "plan", "render", path, "--arch", "sparc")
    assert code == 2 and err.startswith("cloud-boot: error: argument --arch: unknown architecture 'sparc'"), err
    code, _, err = run(capsys, "plan", "render", path, "--arch", "amd64", "--lldp", "port_id")
    assert code == 1 and "KEY=VALUE" in err
    code, _, err = run(capsys, "plan", "check", tmp_path / "missing.hcl")
    assert code == 1 and "missing.hcl" in err and "Traceback" not in err
    binary = tmp_path / "bin.hcl"
    binary.write_bytes(b"\xff\xfe\x00")
    code, _, err = run(capsys, "plan", "check", binary)
    assert code == 1 and "not UTF-8" in err


def test_hcl_forms() -> None:
    text = '''# comment
default_target = "t" // another
locals {
  words = ["a", "b"]
  doc   = <<-EOT
    line one
    ${local.words[1]}
    EOT
}
target "t" {
  index   = "r/t"
  cmdline = [
    "x=${join(",", local.words)}",  # comments inside lists
    local.doc == "line one\\nb\\n" ? "heredoc-ok" : "heredoc-bad",
  ]
}
'''
    parsed = bplan.load(text, "forms.hcl")
    assert parsed["attrs"]["default_target"] == {"line": 2, "expr": '"t"'}
    t = bplan.render(parsed, "amd64")
    assert t["cmdline"] == "x=a,b heredoc-ok"


def test_load_needs_text() -> None:
    with pytest.raises(PlanError):
        bplan.load(b"default_target = 1", "x.hcl")  # type: ignore[arg-type]


SCOPE = Scope({"arch": "amd64", "lldp": {"available": False, "port_id": ""}, "items": [1, 2], "s": "x"})
EXPR_ALPHABET = st.sampled_from(list('abcxyz019 _-.,:;?!=<>+-*/%&|()[]{}"\\$~#\n\t') + ["${", "}", "<<EOT\n",
                                                                                       "true", "null", "arch"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(EXPR_ALPHABET, max_size=40).map("".join)))
def test_fuzz_expressions_only_raise_plan_errors(src: str) -> None:
    try:
        Expr(src, 1).evaluate(SCOPE)
    except PlanError as exc:
        assert str(exc)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(['target "a" {', "}", "index = ", '"r"', "locals {", "x = local.x",
                                 "\n", "disk {", 'device = "d"', "default_target = ", "menu {", "timeout = ",
                                 "${", "[", "]", "1", "arch"]), max_size=25).map(" ".join))
def test_fuzz_plans_only_raise_plan_errors(text: str) -> None:
    try:
        parsed = bplan.load(text, "fuzz.hcl")
        bplan.check(parsed)
    except PlanError as exc:
        assert str(exc).startswith("fuzz.hcl")
