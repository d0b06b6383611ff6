"""Mutation fuzzers for the parsers of untrusted text, in the filesystem fuzzers' discipline (test_fs_fuzz: bounded
and fuzz): the plan language (HCL text and the parsed JSON form, read, checked and rendered for every arch) and the
OCI JSON (manifests and indexes, as resolve and pull read them). Hypothesis picks edits (a byte changed, a token
of the language inserted, a span deleted or repeated) applied to real seeds: the example plans, a plan calling
every function, a bomb, real manifests and indexes.

Only the typed errors may come out (PlanError; OciError and the pull's CloudBootError), nothing may run for
HANG_SECONDS, and no run may go over its budget: each is traced (tracemalloc) and its peak must stay under
PEAK_BYTES, with the plan limits set low (a few times what they allow). `make fuzz` runs each for FUZZ_SECONDS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fs_fuzz import bounded, fuzz  # noqa: E402

import arches  # noqa: E402
from bootplan import PlanError, hcl  # noqa: E402
from bootplan import plan as bplan  # noqa: E402
from bootplan.expr import FUNCTIONS, Limits  # noqa: E402
from cloudboot.errors import CloudBootError  # noqa: E402
from cloudboot.planfile import _no_constant  # noqa: E402
from cloudboot.registry.pull import layer_names  # noqa: E402
from compat import json as cjson  # noqa: E402
from oci.client import check_descriptor, check_manifest, is_index, layers_of, parse_json_object, select_platform  # noqa: E402
from oci.errors import OciError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(value=64 << 10, memory=1 << 20, depth=64, targets=1000, steps=200_000, nodes=4000)
PEAK_BYTES = 32 << 20  # traced peak of one run: parsing a seed takes well under 1 MiB, the limits allow 1 MiB
ARCHES = [a.go for a in arches.ARCHES]

BOMB = ("locals {\n  p0 = \"ab\"\n"
        + "".join(f'  p{i} = "${{local.p{i - 1}}}${{local.p{i - 1}}}"\n' for i in range(1, 40))
        + "  l = concat([local.p3], [local.p3])\n}\n"
        + 'target "a" {\n  kernel = "r/k:1"\n  label = local.p39\n  cmdline = local.l\n}\n')
# every function of the plan language called once (the example plans call none), for mutations to start from
FUNCTION_SEED = ('locals {\n  l = ["a", "B ", "c"]\n  m = {a = "x", b = "y"}\n}\ntarget "f" {\n  kernel = "r/k:1"\n'
                 '  label = join(",", concat(local.l, [upper("a"), lower("B"), trimspace(" c "), '
                 'replace("abc", "b", "x")], split("-", "a-b")))\n'
                 '  cmdline = [lookup(local.m, "a", "z"), coalesce("", "q"), contains(local.l, "a") ? "y" : "n", '
                 'startswith("ab", "a") && endswith("ab", "b") ? "s" : "t", length(local.l) > 2 ? "l" : "k"]\n}\n')
PLAN_SEEDS = sorted(p.read_text() for p in (ROOT / "plans").glob("*.hcl")) + [FUNCTION_SEED, BOMB]
PLAN_TOKENS = ['${', '}', '{', '[', ']', '"', '(', ')', ',', '=', '\n', 'local.', 'lldp.', 'arch',
               *[name + "(" for name in sorted(FUNCTIONS)], 'format(', '==', '!=', '&&', '||', '!', '?', ':',
               '*', '+', '-', '/', '%', '9' * 30, '1e308', '0.5', 'null', 'true', 'false', 'for ', ' in ', '=>',
               '...', '#', '//', '/*', '*/', '<<EOT\n', '\nEOT\n', '%{', '\\u0000', '\\', '\x00', '\u202e', '\x1b',
               'target "t" {\n', 'locals {\n', 'menu {\n', 'disk {\n', 'subplan = ', 'index = ', 'kernel = ',
               'default_target = ', '"r/x:1"', '[', ' ' * 4]


def _seed_manifests() -> list[str]:
    desc = {"mediaType": "application/vnd.cloudboot.kernel", "size": 1234,
            "digest": "sha256:" + "ab" * 32, "annotations": {"org.opencontainers.image.title": "vmlinuz"}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                           "digest": "sha256:" + "cd" * 32}, "layers": [desc, dict(desc, annotations={})]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": manifest["mediaType"], "size": 500, "digest": "sha256:" + "ef" * 32,
         "platform": {"os": "linux", "architecture": arch, **({"variant": "v8"} if arch == "arm64" else {})}}
        for arch in ("amd64", "arm64", "riscv64")]}
    docker = dict(index, mediaType="application/vnd.docker.distribution.manifest.list.v2+json")
    return [json.dumps(d, indent=1) for d in (manifest, index, docker)]


OCI_SEEDS = _seed_manifests()
OCI_TOKENS = ['{', '}', '[', ']', '"', ',', ':', 'null', 'true', '-1', '1e999', '9' * 40, '"sha256:', '"sha512:',
              '"mediaType"', '"manifests"', '"layers"', '"platform"', '"size"', '"digest"', '"annotations"',
              '"org.opencontainers.image.title"', '"../x"', '"\\u0000"', '"\\ud800"', '\\', '\xff', 'NaN',
              '"schemaVersion": 2', '[' * 50]

EDITS = st.lists(st.tuples(st.sampled_from(["byte", "token", "delete", "repeat"]), st.integers(0, 1 << 16),
                           st.integers(0, 255), st.integers(1, 64)), min_size=1, max_size=8)


def mutate(text: str, tokens: list[str], edits: list[tuple[str, int, int, int]]) -> str:
    """`text` with the edits applied: (kind, where, what, length)."""
    for kind, where, what, length in edits:
        pos = where % (len(text) + 1)
        if kind == "byte":
            text = text[:pos] + chr(what) + text[pos + 1:]
        elif kind == "token":
            text = text[:pos] + tokens[what % len(tokens)] + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + length:]
        else:
            text = text[:pos] + text[pos:pos + length] * (1 + what % 8) + text[pos:]
    return text


def traced(run) -> None:
    """`run()` under bounded-style tracing: its peak allocation must stay under PEAK_BYTES."""
    tracemalloc.start()
    try:
        run()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < PEAK_BYTES, f"a run allocated {peak} bytes at its peak (over {PEAK_BYTES})"


def exercise_plan(parsed) -> int:
    """What `plan check` and `plan render` do with a parsed plan: compile, check, render every target for every
    arch (with and without LLDP facts; a target that is not for an arch is a PlanError of its own). The number of
    renders that succeeded."""
    plan = bplan.Plan(parsed, "fuzz.hcl", LIMITS)
    with bounded(PlanError):
        plan.check()
    rendered = 0
    for name in plan.names()[:4]:
        for arch in ARCHES:
            for lldp in ({}, {"port_id": "Eth1", "system_name": "sw1"}):
                with bounded(PlanError):
                    bplan.render(plan, arch, target=name, lldp=lldp, menu="0")
                    rendered += 1
    return rendered


def run_plan(seed: int, edits, as_json: bool) -> None:
    text = PLAN_SEEDS[seed % len(PLAN_SEEDS)]

    def run() -> None:
        with bounded(PlanError):
            if as_json:
                raw = mutate(json.dumps(hcl.parse(text, "seed.hcl")), PLAN_TOKENS + OCI_TOKENS, edits)
                try:
                    parsed = json.loads(raw, parse_constant=_no_constant)
                except (ValueError, RecursionError):
                    return  # not JSON: planfile's one line; the plan code never sees it
            else:
                parsed = hcl.parse(mutate(text, PLAN_TOKENS, edits), "fuzz.hcl", LIMITS)
            exercise_plan(parsed)

    traced(run)


def run_oci(seed: int, edits) -> None:
    raw = mutate(OCI_SEEDS[seed % len(OCI_SEEDS)], OCI_TOKENS, edits).encode("utf-8", "surrogatepass")

    def run() -> None:
        with bounded((OciError, CloudBootError)):
            doc = parse_json_object(raw, "fuzz")
            if is_index(doc, ""):
                for arch in ("amd64", "arm64", "riscv64", "loong64"):
                    with bounded(OciError):
                        check_descriptor(select_platform(doc, "linux", arch, None, "fuzz"), "fuzz")
                    with bounded(OciError):
                        check_descriptor(select_platform(doc, "linux", arch, "v8", "fuzz"), "fuzz")
                return
            check_manifest(doc, "fuzz")
            layers_of(doc, "application/vnd.cloudboot.kernel")
            layer_names(doc, "fuzz")

    traced(run)


JSON_SEEDS = OCI_SEEDS + [json.dumps(hcl.parse(PLAN_SEEDS[0], "seed.hcl"))]


def run_json(seed: int, edits) -> None:
    """compat.json against the json module on a mutated seed (a manifest, an index, a plan's JSON form): the same
    value or the same error (type and message), and the same text when the value is dumped again."""
    text = mutate(JSON_SEEDS[seed % len(JSON_SEEDS)], OCI_TOKENS, edits)
    for raw in (text, text.encode("utf-8", "surrogatepass")):
        try:
            want = json.loads(raw)
        except ValueError as exc:
            with pytest.raises(type(exc)) as got:
                cjson.loads(raw)
            assert str(got.value) == str(exc)
            continue
        got = cjson.loads(raw)
        assert json.dumps(got) == json.dumps(want)  # NaN != NaN: compare the texts
        assert cjson.dumps(got) == json.dumps(got)


SEEDS = st.integers(0, 1 << 8)


@pytest.mark.parametrize("form", ["hcl", "json"])
def test_fuzz_parsers_plan(form: str) -> None:
    fuzz(lambda example: run_plan(example[0], example[1], form == "json"), st.tuples(SEEDS, EDITS))


def test_fuzz_parsers_oci() -> None:
    fuzz(lambda example: run_oci(example[0], example[1]), st.tuples(SEEDS, EDITS))


def test_fuzz_json_matches_stdlib() -> None:
    fuzz(lambda example: run_json(example[0], example[1]), st.tuples(SEEDS, EDITS))


def test_json_without_stdlib_json() -> None:
    """The init's JSON reads and writes without importing json (and re): each is a module not loaded yet."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'firmware/modules')!r}); from compat import json; "
            "d = json.loads(b'{\"a\": [1, 2.5, null, \"\\u00e9\"]}'); "
            "assert json.dumps(d) == '{\"a\": [1, 2.5, null, \"\\\\u00e9\"]}', json.dumps(d); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('json', 're')))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out


def test_the_seeds_run_clean() -> None:
    """The seeds themselves go all the way through (a fuzzer whose every input fails early explores nothing)."""
    for text in PLAN_SEEDS[:-1]:
        parsed = hcl.parse(text, "seed.hcl")
        bplan.Plan(parsed, "seed.hcl", LIMITS).check()
        assert exercise_plan(parsed) > 0
    with pytest.raises(PlanError, match="over the plan limit "):
        bplan.Plan(hcl.parse(BOMB, "bomb.hcl"), "bomb.hcl", LIMITS).check()
    for raw in OCI_SEEDS:
        doc = parse_json_object(raw.encode(), "seed")
        if is_index(doc):
            assert select_platform(doc, "linux", "arm64", "v8", "seed")["platform"]["architecture"] == "arm64"
        else:
            check_manifest(doc, "seed")
            assert layer_names(doc, "seed") == ["vmlinuz", "layer1"]


# Crashes the fuzzers found, kept as regressions: (fuzzer, seed, edits).
REGRESSIONS: list[tuple[str, int, list[tuple[str, int, int, int]]]] = [
]


def test_fuzz_parsers_regressions() -> None:
    for which, seed, edits in REGRESSIONS:
        if which == "oci":
            run_oci(seed, edits)
        else:
            run_plan(seed, edits, which == "json")

