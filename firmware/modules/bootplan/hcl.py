"""HCL text -> the plan's parsed form (portable: MicroPython and CPython; bootplan.expr reads the expressions).

The parsed form is plain JSON, the same on every runtime, so the firmware can evaluate a plan pushed pre-parsed:

    {"format": "cloud-boot.plan.v1", "file": "plans/x.hcl",
     "attrs": {"default_target": {"line": 1, "expr": "\\"primary\\""}, ...},
     "blocks": [{"type": "target", "labels": ["alpine"], "line": 12,
                 "attrs": {...}, "blocks": [...]}, ...]}

Each attribute keeps the exact source text of its expression (and the line it starts on). The body grammar is
HCL's native syntax (hclsyntax's spec): attributes `name = expression` ended by a newline (newlines inside
brackets, parentheses, braces and interpolations are blanks), blocks `type "label" ident { ... }` whose closing
brace ends its line, one-line blocks `type { name = expression }`, and `#`, `//` and `/* */` comments. Linear in
the text and bounded in nesting: a plan of 100,000 targets reads in seconds, a deeply nested one is one error.
"""

from bootplan import PlanError, quote
from bootplan.expr import NodeBudget, _desc, _Parser
from bootplan.plan import FORMAT

MAX_BLOCK_DEPTH = 8  # blocks inside blocks (a plan uses two: target, then disk)
_IDSTART = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")  # as bootplan.expr's identifiers
_IDCHAR = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789-")


class _Attr(dict):
    """An attribute's {"line", "expr"}, carrying the tree already made of its text (`node`) so that compiling
    the plan does not parse it a second time. It is JSON like any dict."""

    node = None


class _Reader:
    def __init__(self, text, filename, limits=None):
        self.s = text
        self.budget = NodeBudget(limits)
        self.n = len(text)
        self.i = 0
        self.line = 1
        self.file = filename

    def take(self, line, target):
        """One node (an attribute, a block, a plain string) from the budget; over it, PlanError at `line`."""
        try:
            self.budget.take()
        except PlanError as e:
            e.file, e.line, e.target = self.file, line, target
            raise

    def fail(self, msg, line=None, target=None):
        raise PlanError("syntax error: " + msg, file=self.file, line=line or self.line, target=target)

    def char(self):
        return self.s[self.i:self.i + 1]

    def advance(self, j):
        """Move to offset j, counting the newlines passed."""
        if j > self.i + 1 or self.s[self.i:j] == "\n":
            self.line += self.s.count("\n", self.i, j)
        self.i = j

    def blanks(self, newlines):
        """Skip spaces, tabs, carriage returns and comments; newlines too when `newlines`."""
        s, n, i = self.s, self.n, self.i
        lines = 0
        while i < n:
            c = s[i]
            if c == " " or c == "\t" or c == "\r":
                i += 1
            elif c == "\n" and newlines:
                i += 1
                lines += 1
            elif c == "#" or (c == "/" and s[i + 1:i + 2] == "/"):
                j = s.find("\n", i)
                i = n if j < 0 else j
            elif c == "/" and s[i + 1:i + 2] == "*":
                j = s.find("*/", i + 2)
                if j < 0:
                    self.line += lines
                    self.advance(i)
                    self.fail("unterminated /* comment")
                lines += s.count("\n", i, j)
                i = j + 2
            else:
                break
        self.line += lines
        self.i = i

    def ident(self):
        s, start, n = self.s, self.i, self.n
        if start < n and s[start] in _IDSTART:
            j = start + 1
            while j < n and s[j] in _IDCHAR:
                j += 1
            self.i = j
        return s[start:self.i]

    def end_of_line(self, what, target):
        """After an attribute or a block's closing brace: only blanks and a comment until the newline (or the
        end of the text)."""
        self.blanks(False)
        c = self.char()
        if c == "\n":
            self.advance(self.i + 1)
        elif c != "" and c != "}":
            self.fail("unexpected %s after %s (one per line)" % (_desc(c), what), target=target)

    def expression(self, target):
        """The expression at the current offset, to its end: (tree, source text, first line)."""
        self.blanks(False)
        line = self.line
        plain = self.plain_string()
        if plain is not None:
            self.take(line, target)
            return plain
        p = _Parser(self.s, lines=True, budget=self.budget)
        p.i = self.i
        try:
            if p.char() in ("", "\n"):
                p.err("expected an expression, got %s" % ("the end" if p.char() == "" else "a newline"))
            node = p.expr()
        except PlanError as e:
            e.line = self.line + self.s.count("\n", self.i, e.pos if e.pos is not None else self.i)
            e.pos = None
            e.file = self.file
            if e.target is None:
                e.target = target
            raise
        end = p.end()
        src = self.s[self.i:end]
        self.advance(end)
        return node, src, line

    def plain_string(self):
        """(tree, text, line) when the expression is a string without escapes or interpolations and nothing follows
        it on its line (the commonest attribute, read without the expression parser); else None."""
        s, i = self.s, self.i
        if s[i:i + 1] != '"':
            return None
        j = s.find('"', i + 1)
        if j < 0:
            return None
        body = s[i + 1:j]
        if "\\" in body or "${" in body or "%{" in body or "\n" in body:
            return None
        k = j + 1
        while k < self.n and s[k] in " \t\r":
            k += 1
        if k < self.n and s[k] not in "\n#}":
            return None
        line = self.line
        self.i = j + 1
        return ("lit", 0, 1, body), s[i:j + 1], line

    def label(self, target):
        c = self.char()
        if c == '"':
            j = self.s.find('"', self.i + 1)
            plain = self.s[self.i + 1:j] if j > 0 else "\n"
            if "\n" not in plain and "\\" not in plain and "${" not in plain and "%{" not in plain:
                self.i = j + 1  # the commonest label, read without the template parser
                return plain
            p = _Parser(self.s, lines=True)
            p.i = self.i + 1
            start, line = self.i, self.line
            try:
                node = p.template(start, True, self.n, 0)
            except PlanError:
                self.fail("a block label is not a closed string")
            self.advance(p.i)
            if node[0] != "lit" or not isinstance(node[3], str):
                raise PlanError("a block label must be a plain string, got %s" % self.s[start:p.i].strip(),
                                file=self.file, line=line, target=target)
            return node[3]
        name = self.ident()
        if not name:
            self.fail("expected a block label or '{', got %s" % _desc(c), target=target)
        return name

    def body(self, out, depth, closing, target):
        """Attributes and blocks into `out` until the closing brace (`closing`) or the end of the text."""
        while True:
            self.blanks(True)
            c = self.char()
            if c == "":
                if closing:
                    self.fail("unexpected end of file (a block or string is not closed?)", target=target)
                return
            if c == "}":
                if not closing:
                    self.fail("unexpected '}' (no block is open)")
                self.advance(self.i + 1)
                return
            line = self.line
            name = self.ident()
            if not name:
                self.fail("unexpected %s" % _desc(c), target=target)
            self.blanks(False)
            if self.char() == "=" and self.s[self.i + 1:self.i + 2] != "=":
                self.advance(self.i + 1)
                self.attribute(out, name, line, target)
                self.end_of_line("an attribute", target)
            else:
                self.block(out, name, line, depth, target)

    def attribute(self, out, name, line, target):
        if name in out["attrs"]:
            raise PlanError("attribute %s is set twice (first on line %d)" % (quote(name), out["attrs"][name]["line"]),
                            file=self.file, line=line, target=target)
        self.take(line, target)
        node, src, first = self.expression(target)
        a = _Attr()
        a["line"] = first
        a["expr"] = src
        a.node = node
        out["attrs"][name] = a

    def block(self, out, kind, line, depth, target):
        if depth >= MAX_BLOCK_DEPTH:
            self.fail("blocks nested deeper than %d" % MAX_BLOCK_DEPTH, target=target)
        self.take(line, target)
        labels = []
        while self.char() != "{":
            if self.char() in ("", "\n"):
                self.fail("expected '=' or '{' after %s, got %s" % (quote(kind), _desc(self.char())), line, target)
            labels.append(self.label(target))
            self.blanks(False)
        self.advance(self.i + 1)
        block = {"type": kind, "labels": labels, "line": line, "attrs": {}, "blocks": []}
        inner = labels[0] if kind == "target" and len(labels) == 1 else target
        self.blanks(False)
        if self.char() == "\n" or self.char() == "":
            self.body(block, depth + 1, True, inner)
        else:  # a one-line block: at most one attribute, then the brace
            if self.char() != "}":
                aline = self.line
                name = self.ident()
                self.blanks(False)
                if not name or self.char() != "=" or self.s[self.i + 1:self.i + 2] == "=":
                    self.fail("a one-line block holds one attribute (name = value): put its contents on lines of "
                              "their own", target=inner)
                self.advance(self.i + 1)
                self.attribute(block, name, aline, inner)
                self.blanks(False)
            if self.char() != "}":
                self.fail("a one-line block holds one attribute, then '}' (got %s)" % _desc(self.char()),
                          target=inner)
            self.advance(self.i + 1)
        out["blocks"].append(block)
        self.end_of_line("a block", target)


def parse(text, filename="plan.hcl", limits=None):
    """HCL text -> parsed form (dict). Syntax errors are PlanError with file and line; a text holding more than
    the `nodes` limit (of `limits`, default the defaults) is one too."""
    if not isinstance(text, str):
        raise PlanError("a plan must be text", file=filename)
    out = {"format": FORMAT, "file": filename, "attrs": {}, "blocks": []}
    _Reader(text, filename, limits).body(out, 0, False, None)
    return out
