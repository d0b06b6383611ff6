"""HCL text -> the plan's parsed form (CPython only: python-hcl2's Lark grammar checks the syntax).

The parsed form is plain JSON, the same on every runtime, so the firmware (which has no HCL parser) can
evaluate a plan pushed pre-parsed:

    {"format": "cloud-boot.plan.v1", "file": "plans/x.hcl",
     "attrs": {"default_target": {"line": 1, "expr": "\\"primary\\""}, ...},
     "blocks": [{"type": "target", "labels": ["alpine"], "line": 12,
                 "attrs": {...}, "blocks": [...]}, ...]}

Each attribute keeps the exact source text of its expression (and the line it starts on); bootplan.expr
parses and evaluates it on any runtime. This module imports python-hcl2 only when called.
"""

from bootplan import PlanError, quote
from bootplan.plan import FORMAT


def _syntax_error(exc, filename, text):
    name = type(exc).__name__
    line = getattr(exc, "line", None)
    if line is not None and line < 1:
        line = None
    token = getattr(exc, "token", None)
    if name == "UnexpectedCharacters":
        msg = "syntax error: unexpected character %s" % quote(getattr(exc, "char", "?"))
    elif name == "UnexpectedEOF" or (token is not None and getattr(token, "type", "") == "$END"):
        msg = "syntax error: unexpected end of file (a block or string is not closed?)"
        line = line or (text.count("\n") + 1)
    elif token is not None:
        value = str(token).strip()
        msg = "syntax error: unexpected %s" % (quote(value) if value else "newline")
    else:
        msg = "syntax error: %s" % str(exc).strip().split("\n")[0]
    column = getattr(exc, "column", None)
    if line and column and column > 0:
        msg += " (column %d)" % column
    return PlanError(msg, file=filename, line=line)


def parse(text, filename="plan.hcl"):
    """HCL text -> parsed form (dict). Syntax errors are PlanError with file and line."""
    try:
        import hcl2
    except ImportError:
        raise PlanError("reading HCL needs python-hcl2 (CPython); give the firmware the parsed form",
                        file=filename) from None
    if not isinstance(text, str):
        raise PlanError("a plan must be text", file=filename)
    try:
        tree = hcl2.parses_to_tree(text)
    except RecursionError:
        raise PlanError("syntax error: nested too deeply", file=filename) from None
    except Exception as exc:  # lark's UnexpectedInput family, and anything the post-lexer raises
        raise _syntax_error(exc, filename, text) from None
    body = tree.children[0] if tree.children else None
    out = {"format": FORMAT, "file": filename, "attrs": {}, "blocks": []}
    if body is not None:
        _body(body, text, filename, out)
    return out


def _is_tree(node, name):
    return getattr(node, "data", None) == name


def _body(body, text, filename, out, target=None):
    for child in body.children:
        if _is_tree(child, "attribute"):
            name = _identifier(child.children[0])
            expr = child.children[-1]
            line = child.meta.line
            if name in out["attrs"]:
                first = out["attrs"][name]["line"]
                raise PlanError("attribute %s is set twice (first on line %d)" % (quote(name), first),
                                file=filename, line=line, target=target)
            src = text[expr.meta.start_pos:expr.meta.end_pos].strip()
            out["attrs"][name] = {"line": expr.meta.line, "expr": src}
        elif _is_tree(child, "block"):
            parts = child.children
            labels = []
            inner = None
            for p in parts[1:]:
                if _is_tree(p, "body"):
                    inner = p
                elif _is_tree(p, "identifier"):
                    labels.append(_identifier(p))
                elif getattr(p, "data", None) is not None:
                    labels.append(_label(p, text, filename))
            block = {"type": _identifier(parts[0]), "labels": labels, "line": child.meta.line,
                     "attrs": {}, "blocks": []}
            if inner is not None:
                is_target = block["type"] == "target" and len(labels) == 1
                _body(inner, text, filename, block, labels[0] if is_target else target)
            out["blocks"].append(block)


def _identifier(node):
    return str(node.children[0])


def _label(node, text, filename):
    from bootplan.expr import Expr

    src = text[node.meta.start_pos:node.meta.end_pos]
    is_const, value = Expr(src, node.meta.line).literal()
    if not is_const or not isinstance(value, str):
        raise PlanError("a block label must be a plain string, got %s" % src.strip(), file=filename,
                        line=node.meta.line)
    return value
