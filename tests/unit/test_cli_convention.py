"""The CLI convention (README, "CLI conventions"), checked on every verb and sub-verb the parser has (found by
walking it, not from a list): a description, `--help` works, `--arch`/`--platform` take every spelling of an
arch and agree on the canonical one, `-o` and `-d` say what they write, `--json` is described."""

from __future__ import annotations

import argparse

import pytest

import arches
from cloudboot import cliopts
from cloudboot.cli import build_parser, main

SPELLINGS = [("amd64", "x86_64", "x64", "AMD64"), ("arm64", "aarch64", "aa64"), ("loong64", "loongarch64"),
             ("riscv64",)]


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


VERBS = [(path, p) for path, p in _walk(build_parser()) if path]


def _sample(action: argparse.Action) -> str:
    if action.choices:
        return str(next(iter(action.choices)))
    return {int: "1", float: "1", cliopts.arch_type: "amd64", cliopts.arch_list_type: "amd64",
            cliopts.platform_type: "linux/amd64", cliopts.platform_ref_type: "linux/amd64=r.example/x"}.get(
        action.type, "x")


def _parse(path: tuple[str, ...], parser: argparse.ArgumentParser, option: str, value: str) -> argparse.Namespace:
    """Parse `path` with every required argument filled in and `option value` given."""
    positionals, options = [], []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) or option in a.option_strings or a.dest == "help":
            continue
        if not a.option_strings and a.nargs not in ("?", "*"):
            positionals.append(_sample(a))
        elif a.option_strings and a.required:
            options += [a.option_strings[0], _sample(a)]
    return build_parser().parse_args([*path, *positionals, *options, option, value])


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_the_walk_finds_every_verb_and_sub_verb() -> None:
    found = {" ".join(path) for path, _ in VERBS}
    assert {"firmware", "qemu", "push", "push plan", "fs info", "plan render", "pull"} <= found, found
    assert len(found) >= 24


@pytest.mark.parametrize(("path", "parser"), VERBS, ids=[" ".join(p) for p, _ in VERBS])
def test_every_verb_follows_the_convention(path: tuple[str, ...], parser: argparse.ArgumentParser,
                                           capsys: pytest.CaptureFixture) -> None:
    assert parser.description and len(parser.description) > 20, f"{' '.join(path)}: no description"
    assert main([*path, "--help"]) == 0
    assert parser.description.split()[0] in capsys.readouterr().out
    for a in parser._actions:
        if a.option_strings and a.dest != "help":
            assert a.help, f"{' '.join(path)} {a.option_strings[0]}: no help text"
        assert "--file" not in a.option_strings and "--key" not in a.option_strings or path == ("sign",), \
            f"{' '.join(path)}: inputs are positional and cosign keys are --cosign-key"
    out = _option(parser, "-o")
    if out is not None:
        assert out.option_strings == ["-o", "--output"] and out.help.startswith("the output file: "), out.help
    directory = _option(parser, "-d")
    if directory is not None:
        assert directory.option_strings == ["-d", "--dir"] and directory.help.startswith("the output directory: ")
    if _option(parser, "--arch") is not None:
        for names in SPELLINGS:
            got = {repr(_parse(path, parser, "--arch", n).arch) for n in names}
            assert len(got) == 1 and arches.get(names[0]).name in got.pop(), (path, names)
    platform = _option(parser, "--platform")
    if platform is not None:
        tail = "=r.example/x" if platform.type is cliopts.platform_ref_type else ""
        for names in SPELLINGS:
            got = {repr(_parse(path, parser, "--platform", f"linux/{n}{tail}").platform) for n in names}
            assert len(got) == 1 and f"linux/{arches.get(names[0]).go}" in got.pop(), (path, names)


@pytest.mark.parametrize("argv", [["firmware", "--arch", "sparc"], ["qemu", "--arch", "ppc"],
                                  ["plan", "render", "p.hcl", "--arch", "mips"],
                                  ["initramfs", "-o", "x.cpio", "--arch", "s390x"],
                                  ["pull", "r.example/x", "-d", ".", "--platform", "linux/ia64"]])
def test_a_bad_arch_is_one_line_with_the_one_message(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    bad = argv[-1].rpartition("/")[2]
    assert err.startswith(f"cloud-boot: error: argument {argv[-2]}: unknown architecture {bad!r}: use one of "
                          f"{arches.known()}") and err.count("\n") == 1, err
