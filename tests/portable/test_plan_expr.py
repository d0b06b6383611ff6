"""HCL expressions (bootplan.expr): plain asserts, runs on CPython (pytest) and the MicroPython unix port."""

from bootplan import PlanError
from bootplan.expr import Expr, Scope, references

VARS = {"arch": "arm64", "name": "x", "n": 3, "items": ["a", "b"], "obj": {"k": "v", "n": 2},
        "lldp": {"available": True, "port_id": "Eth1"}, "nothing": None}


def ev(src, variables=None):
    return Expr(src, 1).evaluate(Scope(VARS if variables is None else variables))


def error(src, variables=None):
    try:
        value = ev(src, variables)
    except PlanError as exc:
        return exc
    raise AssertionError("no error for {!r} (got {!r})".format(src, value))


def test_literals():
    assert ev("1") == 1
    assert ev("1.5") == 1.5
    assert ev("1e3") == 1000
    assert ev("-2") == -2
    assert ev("true") is True
    assert ev("false") is False
    assert ev("null") is None
    assert ev('"plain"') == "plain"
    assert ev('""') == ""


def test_arithmetic_and_precedence():
    assert ev("1 + 2 * 3") == 7
    assert ev("(1 + 2) * 3") == 9
    assert ev("10 - 4 - 3") == 3
    assert ev("7 / 2") == 3.5
    assert ev("6 / 3") == 2
    assert ev("7 % 3") == 1
    assert ev("-n + 1") == -2
    assert ev("n * 2 == 6") is True


def test_comparisons_and_logic():
    assert ev("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 4 == false") is True
    assert ev('arch == "arm64"') is True
    assert ev('arch != "arm64"') is False
    assert ev("!true || false") is False
    assert ev("!(1 == 1)") is False
    assert ev('1 == "1"') is False  # no conversion between types, as in HCL
    assert ev("true == 1") is False
    assert ev('["a", "b"] == items') is True
    assert ev("false && nothing") is False  # short circuit: the right side is not looked at
    assert ev("true || nothing") is True


def test_conditionals():
    assert ev('arch == "arm64" ? "ttyAMA0" : "ttyS0"') == "ttyAMA0"
    assert ev('arch == "amd64" ? "a" : arch == "arm64" ? "b" : "c"') == "b"
    assert ev('lldp.available ? "node-${lldp.port_id}" : "none"') == "node-Eth1"
    assert ev("true ? [1] : [2]") == [1]


def test_templates():
    assert ev('"console=${arch == "arm64" ? "ttyAMA0" : "ttyS0"} quiet"') == "console=ttyAMA0 quiet"
    assert ev('"n=${n} b=${true} f=${1.5} i=${4 / 2}"') == "n=3 b=true f=1.5 i=2"
    assert ev('"$${literal} %%{also}"') == "${literal} %{also}"
    assert ev('"tab\\there \\"q\\" \\\\ \\u00e9"') == 'tab\there "q" \\ \u00e9'
    assert ev('"${items}"') == ["a", "b"]  # a lone interpolation keeps its type
    assert ev('"a ${~ "b" ~} c"') == "abc"
    assert ev('"${"in ${"nested"}"}"') == "in nested"


def test_heredocs():
    assert ev("<<EOT\nhello ${name}\n  world\nEOT") == "hello x\n  world\n"
    assert ev("<<-EOT\n    one\n      two\n    EOT") == "one\n  two\n"


def test_lists_objects_and_indexing():
    assert ev('[1, "a", [true], null,]') == [1, "a", [True], None]
    assert ev("[]") == []
    assert ev('{a = 1, "b": 2, c = [n]}') == {"a": 1, "b": 2, "c": [3]}
    assert ev("{\n a = 1\n b = 2\n}") == {"a": 1, "b": 2}
    assert ev("items[1]") == "b"
    assert ev("items.0") == "a"
    assert ev('obj["k"]') == "v"
    assert ev("obj.n + 1") == 3
    assert ev("{x = {y = [10, 20]}}.x.y[1]") == 20


def test_functions():
    assert ev('join(",", items)') == "a,b"
    assert ev('lower("ABC")') == "abc"
    assert ev('upper("abc")') == "ABC"
    assert ev('lookup(obj, "k", "d")') == "v"
    assert ev('lookup(obj, "zz", "d")') == "d"
    assert ev('contains(items, "b")') is True
    assert ev("length(items)") == 2
    assert ev('coalesce("", nothing, "x")') == "x"
    assert ev('concat(items, ["c"])') == ["a", "b", "c"]
    assert ev('split(",", "a,b")') == ["a", "b"]
    assert ev('replace("a-b", "-", "_")') == "a_b"
    assert ev('trimspace("  a ")') == "a"
    assert ev('startswith("ttyS0", "tty") && endswith("ttyS0", "S0")') is True


def test_comments_inside_expressions():
    assert ev("[\n  1, # one\n  2, // two\n  /* three */ 3\n]") == [1, 2, 3]


def test_type_errors():
    assert "operator + needs numbers, got string" in str(error('1 + "a"'))
    assert "condition before ? must be a bool, got number" in str(error("1 ? 2 : 3"))
    assert "operator && needs bools" in str(error("1 && true"))
    assert "operator ! needs a bool" in str(error('!"x"'))
    assert "null value cannot be put into a string" in str(error('"a${nothing}"'))
    assert "list cannot be put into a string" in str(error('"a${items}"'))
    assert "division by zero" in str(error("1 / 0"))
    assert "out of range" in str(error("items[5]"))
    assert "has no attribute" in str(error("obj.zz"))
    assert "cannot index a string" in str(error("name[0]"))


def test_reference_errors():
    assert 'unknown variable "nope"' in str(error("nope"))
    assert 'unknown function frob()' in str(error("frob(1)"))
    assert "takes 2 arguments, got 1" in str(error('join(",")'))


def test_syntax_errors_are_located():
    exc = error("1 +")
    assert exc.line == 1 and "expected an expression" in str(exc)
    exc = error('[\n  1,\n  2 3\n]')
    assert exc.line == 3, exc.line
    assert "expected ',' or ']'" in str(exc)
    assert "unterminated string" in str(error('"abc'))
    assert "unknown escape" in str(error('"\\q"'))
    assert "not supported" in str(error("[for x in items : x]"))
    assert "not supported" in str(error("items[*]"))
    assert "not supported" in str(error('"%{ if true }x%{ endif }"'))
    assert "heredoc" in str(error("<<EOT\nno end"))
    assert "empty expression" in str(error(""))
    assert "after the expression" in str(error("1 = 2"))


def test_nesting_is_bounded():
    assert "nested too deeply" in str(error("(" * 200 + "1" + ")" * 200))
    assert "nested too deeply" in str(error("!" * 500 + "true"))
    assert "too complex" in str(error("+".join(["1"] * 100)))


def test_references_for_static_checks():
    refs = references(Expr('local.a ? "${self.name}-${lldp["port_id"]}" : join(",", [arch])').node)
    assert [(r, a) for r, a, _ in refs] == [("local", "a"), ("self", "name"), ("lldp", "port_id"),
                                            ("()", "join"), ("arch", None)]
