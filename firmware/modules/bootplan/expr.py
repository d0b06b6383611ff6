"""HCL native-syntax expressions, as plans use them: parser and evaluator (portable: MicroPython and CPython).

Supported: literals (numbers, strings, true/false/null), string templates with `${...}` interpolation (and
the `$${` / `%%{` escapes, `~` strip markers), heredocs (`<<EOT`, `<<-EOT`), lists `[...]`, objects
`{k = v}`, references (`arch`, `lldp.port_id`, `local.x`, `self.version`, `x[0]`, `x["k"]`), unary `!` `-`,
`* / %`, `+ -`, `< <= > >=`, `== !=`, `&&`, `||`, conditionals `c ? a : b`, and a few functions (FUNCTIONS).
Not supported (a clear error each): `for` expressions, splats, template directives `%{...}`.

A parsed expression is a tree of tuples `(kind, pos, depth, ...)`; `pos` is the offset in the source text,
so errors can name the line. Every failure, at parse or evaluation time, is a bootplan.PlanError.

Evaluation is bounded by a Budget (one per evaluation: a plan's pass for one arch): every value's size is known
before it is made (a template, a join, a replace), so a plan that doubles a string 63 times stops at the `value`
limit instead of taking the machine's memory; LIMITS lists every limit, its default and what it bounds. The
counts are operations and bytes, not time or the allocator's figures, so they are the same on every runtime.
"""

from bootplan import PlanError, quote

MAX_NEST = 16  # brackets, parentheses, interpolations, unary operators inside one another
MAX_DEPTH = 64  # height of the expression tree (bounds the evaluator's recursion)
MAX_INT = (1 << 63) - 1  # whole numbers are 64-bit signed (HCL's are arbitrary; a boot plan needs no more)

# name, default, what it bounds. A user raises one with `--limit name=N` (cloud-boot plan) or
# `cloudboot.plan.limits=name=N,...` (at boot).
LIMITS = (
    ("value", 1 << 20, "bytes in one value"),
    ("memory", 64 << 20, "bytes of values made in one evaluation"),
    ("depth", 100, "levels of nesting: expressions, locals using locals, values in values"),
    ("targets", 100000, "targets in a plan"),
    ("steps", 10000000, "evaluation steps in one evaluation"),
    ("nodes", 1000000, "expressions, attributes and blocks read from one plan"),
)
_LIMIT_NAMES = tuple([n for n, _, _ in LIMITS])


class Limits:
    """One value per LIMITS name (the defaults unless given)."""

    def __init__(self, **given):
        for name, default, _ in LIMITS:
            setattr(self, name, default)
        for name in given:
            self.set(name, given[name])

    def set(self, name, value):
        if name not in _LIMIT_NAMES:
            raise PlanError("unknown plan limit %s (limits: %s)" % (quote(name), ", ".join(_LIMIT_NAMES)))
        if isinstance(value, str):
            value = _limit_number(name, value)
        if type(value) is not int or value < 1:
            raise PlanError("plan limit %s must be a whole number above 0, got %s" % (name, quote(value)))
        setattr(self, name, value)

    @classmethod
    def parse(cls, text):
        """`name=N,name=N` (N may end in K, M or G: powers of 1024) -> Limits; PlanError naming what is wrong."""
        out = cls()
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise PlanError("plan limit %s: want NAME=N" % quote(item))
            out.set(name.strip(), value.strip())
        return out

    def describe(self):
        """`value=1048576 memory=...`: the limits in force."""
        return " ".join(["%s=%d" % (n, getattr(self, n)) for n in _LIMIT_NAMES])


def _limit_number(name, text):
    scale = 1
    if text[-1:] in ("K", "M", "G", "k", "m", "g"):
        scale = 1 << (10 * ("KMG".index(text[-1].upper()) + 1))
        text = text[:-1]
    if not text or [c for c in text if not _is_digit(c)] or len(text) > 18:
        raise PlanError("plan limit %s must be a whole number above 0, got %s" % (name, quote(text)))
    return int(text) * scale


DEFAULT_LIMITS = Limits()


class NodeBudget:
    """What one plan's text may hold (the `nodes` limit): reading a plan takes memory in proportion to its
    expressions, attributes and blocks, so a plan that repeats a construct a million times stops here, before
    its tree outgrows the machine."""

    def __init__(self, limits=None):
        self.limits = limits or DEFAULT_LIMITS
        self.left = self.limits.nodes

    def take(self, n=1):
        self.left -= n
        if self.left < 0:
            raise over_limit("nodes", self.limits)


def over_limit(name, limits, detail=""):
    """The PlanError for a limit reached: which, its value, and how to raise it."""
    what = ""
    for n, _, doc in LIMITS:
        if n == name:
            what = doc
    return PlanError("%sover the plan limit %s=%d (%s); raise it with --limit %s=N (cloudboot.plan.limits=%s=N "
                     "at boot)" % (detail + ": " if detail else "", name, getattr(limits, name), what, name, name))


class Budget:
    """What one evaluation has used of its Limits: steps, bytes made, the current nesting; and the size and depth
    of every list and object it made (kept with the value, so nothing is measured twice)."""

    def __init__(self, limits=None):
        self.limits = limits or DEFAULT_LIMITS
        self.steps = 0
        self.memory = 0
        self.depth = 0
        self.sizes = {}  # id(list or dict) -> (the value, its size, its depth)

    def step(self, n=1):
        self.steps += n
        if self.steps > self.limits.steps:
            raise over_limit("steps", self.limits)

    def enter(self):
        self.depth += 1
        if self.depth > self.limits.depth:
            raise over_limit("depth", self.limits)

    def made(self, size, depth=0):
        """Account for a value of `size` bytes (and `depth` levels) about to be made: PlanError when it is over
        the value or depth limit or the evaluation's memory. Call it BEFORE making the value."""
        if size > self.limits.value:
            raise over_limit("value", self.limits, "a value of %d bytes" % size)
        if depth > self.limits.depth:
            raise over_limit("depth", self.limits, "values nested %d deep" % depth)
        self.memory += size
        if self.memory > self.limits.memory:
            raise over_limit("memory", self.limits)

    def measure(self, v):
        """(size, depth) of a value: strings by length, lists and objects from what was recorded when they were
        made (values from outside, such as the lldp object, are measured once)."""
        if isinstance(v, str):
            return len(v), 0
        if isinstance(v, (list, tuple, dict)):
            known = self.sizes.get(id(v))
            if known is not None and known[0] is v:
                return known[1], known[2]
            items = v.values() if isinstance(v, dict) else v
            size, depth = 16, 0
            self.step(len(v))
            for k in (v if isinstance(v, dict) else ()):
                size += len(k) + 8
            for x in items:
                n, d = self.measure(x)
                size += n + 8
                if d + 1 > depth:
                    depth = d + 1
            self.sizes[id(v)] = (v, size, depth)
            return size, depth
        return 8, 0

    def composite(self, items, keys=None):
        """Account for a list (or, with `keys`, an object) about to be made of `items`."""
        size, depth = 16, 1
        self.step(len(items))
        for x in items:
            n, d = self.measure(x)
            size += n + 8
            if d + 1 > depth:
                depth = d + 1
        for k in keys or ():
            size += len(k) + 8
        self.made(size, depth)
        return size, depth

    def record(self, v, size, depth):
        self.sizes[id(v)] = (v, size, depth)
        return v


def _err(msg, pos):
    e = PlanError(msg)
    e.pos = pos
    return e


def _d(*nodes):
    d = 1
    for n in nodes:
        if n[2] >= d:
            d = n[2] + 1
    if d > MAX_DEPTH:
        raise _err("expression too complex (deeper than %d)" % MAX_DEPTH, nodes[0][1])
    return d


def _clip(text, n=40):
    return text if len(text) <= n else text[:n] + "..."


def _is_digit(c):
    return "0" <= c <= "9"


def _is_idstart(c):
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c == "_"


def _is_idchar(c):
    return _is_idstart(c) or _is_digit(c) or c == "-"


def _desc(c):
    if c == "":
        return "end of expression"
    if c == "\n":
        return "newline"
    return quote(c)


_OPS = (("||", 1), ("&&", 2), ("==", 3), ("!=", 3), ("<=", 4), (">=", 4), ("<", 4), (">", 4),
        ("+", 5), ("-", 5), ("*", 6), ("/", 6), ("%", 6))
_HEX = "0123456789abcdefABCDEF"
_TEMPLATE_STOPS = '"\\$%\n'  # where a run of plain template characters ends
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


class _Parser:
    """Recursive descent over `src` from offset `i`. With `lines` (an attribute in an HCL body) a newline outside
    brackets ends the expression, as HCL's grammar says; `ws_from`/`ws_to` remember the last blank run skipped,
    so the expression's own end (without a trailing comment) is known."""

    def __init__(self, src, lines=False, budget=None):
        self.s = src
        self.budget = budget
        self.n = len(src)
        self.i = 0
        self.nest = 0
        self.lines = lines
        self.open = 0  # brackets, parentheses, braces and interpolations open (newlines are blanks inside)
        self.ws_from = self.ws_to = -1

    def err(self, msg, pos=None):
        raise _err(msg, self.i if pos is None else pos)

    def at(self, text):
        return self.s[self.i:self.i + len(text)] == text

    def char(self):
        return self.s[self.i:self.i + 1]

    def ws(self):
        s, n, i = self.s, self.n, self.i
        stop_nl = self.lines and not self.open
        while i < n:
            c = s[i]
            if c == " " or c == "\t" or c == "\r" or (c == "\n" and not stop_nl):
                i += 1
            elif c == "#" or (c == "/" and s[i + 1:i + 2] == "/"):
                while i < n and s[i] != "\n":
                    i += 1
            elif c == "/" and s[i + 1:i + 2] == "*":
                j = s.find("*/", i + 2)
                if j < 0:
                    self.err("unterminated /* comment", i)
                i = j + 2
            else:
                break
        if i != self.i:
            self.ws_from, self.ws_to = self.i, i
        self.i = i

    def end(self):
        """Where the expression just parsed ends (before the blanks and comments after it)."""
        return self.ws_from if self.ws_to == self.i else self.i

    def expect(self, text, what):
        self.ws()
        if not self.at(text):
            self.err("expected %s %s, got %s" % (quote(text), what, _desc(self.char())))
        self.i += len(text)

    def enter(self):
        self.nest += 1
        if self.nest > MAX_NEST:
            self.err("expression nested too deeply (more than %d levels)" % MAX_NEST)

    def parse_all(self):
        self.ws()
        if self.i >= self.n:
            self.err("empty expression")
        node = self.expr()
        self.ws()
        if self.i < self.n:
            self.err("unexpected %s after the expression" % _desc(self.char()))
        return node

    def expr(self):
        self.enter()
        if self.budget is not None:
            self.budget.take()
        node = self.binary(1)
        self.ws()
        if self.at("?"):
            pos = self.i
            self.i += 1
            a = self.expr()
            self.expect(":", "in a conditional (cond ? a : b)")
            b = self.expr()
            node = ("cond", pos, _d(node, a, b), node, a, b)
        self.nest -= 1
        return node

    def binop(self):
        self.ws()
        for op, prec in _OPS:
            if self.at(op):
                return op, prec
        return None, 0

    def binary(self, minprec):
        left = self.unary()
        while True:
            op, prec = self.binop()
            if op is None or prec < minprec:
                return left
            pos = self.i
            self.i += len(op)
            right = self.binary(prec + 1)
            left = ("bin", pos, _d(left, right), op, left, right)

    def unary(self):
        self.ws()
        c = self.char()
        if c == "!" or c == "-":
            pos = self.i
            self.i += 1
            self.enter()
            x = self.unary()
            self.nest -= 1
            if c == "-" and x[0] == "lit" and _type(x[3]) == "number":
                return ("lit", pos, 1, -x[3])
            return ("un", pos, _d(x), c, x)
        return self.postfix()

    def postfix(self):
        node = self.primary()
        while True:
            save = self.i
            self.ws()
            pos = self.i
            if self.at(".") and not self.at(".."):
                self.i += 1
                c = self.char()
                if c == "*":
                    self.err("splat expressions (.*) are not supported")
                if _is_digit(c):
                    start = self.i
                    while _is_digit(self.char()):
                        self.i += 1
                    if self.i - start > 18:
                        self.err("index %s out of range" % _clip(self.s[start:self.i]), start)
                    key = ("lit", start, 1, int(self.s[start:self.i]))
                    node = ("index", pos, _d(node), node, key)
                elif _is_idstart(c):
                    node = ("attr", pos, _d(node), node, self.ident())
                else:
                    self.err("expected an attribute name after '.', got %s" % _desc(c))
            elif self.at("["):
                self.i += 1
                self.enter()
                self.open += 1
                self.ws()
                if self.at("*"):
                    self.err("splat expressions ([*]) are not supported")
                key = self.expr()
                self.expect("]", "to close the index")
                self.open -= 1
                self.nest -= 1
                node = ("index", pos, _d(node, key), node, key)
            else:
                self.i = save
                return node

    def ident(self):
        start = self.i
        while self.i < self.n and _is_idchar(self.s[self.i]):
            self.i += 1
        return self.s[start:self.i]

    def primary(self):
        self.ws()
        pos = self.i
        c = self.char()
        if c == "":
            self.err("expected an expression, got the end")
        if c == '"':
            self.i += 1
            return self.template(pos, True, self.n, 0)
        if c == "<" and self.at("<<"):
            return self.heredoc()
        if _is_digit(c):
            return self.number()
        if c == "(":
            self.i += 1
            self.open += 1
            node = self.expr()
            self.expect(")", "to close the parenthesis")
            self.open -= 1
            return node
        if c == "[":
            return self.tuple()
        if c == "{":
            return self.object()
        if _is_idstart(c):
            name = self.ident()
            if name == "true" or name == "false":
                return ("lit", pos, 1, name == "true")
            if name == "null":
                return ("lit", pos, 1, None)
            save = self.i
            self.ws()
            if self.at("("):
                return self.call(pos, name)
            if name == "for" and _is_idstart(self.char()):
                self.err("for expressions are not supported", pos)
            self.i = save
            return ("var", pos, 1, name)
        self.err("unexpected %s" % _desc(c))

    def number(self):
        start = self.i
        s = self.s
        while _is_digit(self.char()):
            self.i += 1
        is_float = False
        if self.char() == "." and _is_digit(s[self.i + 1:self.i + 2]):
            is_float = True
            self.i += 1
            while _is_digit(self.char()):
                self.i += 1
        if self.char() in ("e", "E"):
            is_float = True
            self.i += 1
            if self.char() in ("+", "-"):
                self.i += 1
            if not _is_digit(self.char()):
                self.err("malformed number %s" % quote(s[start:self.i + 1]), start)
            while _is_digit(self.char()):
                self.i += 1
        text = s[start:self.i]
        if not is_float and len(text.lstrip("0")) > 19:  # checked before int(): CPython refuses 4300 digits
            self.err("number %s out of range (whole numbers go up to %d)" % (_clip(text), MAX_INT), start)
        value = float(text) if is_float else int(text)
        if is_float and (value != value or value in (float("inf"), float("-inf"))):
            self.err("number %s out of range" % _clip(text), start)
        if not is_float and value > MAX_INT:
            self.err("number %s out of range (whole numbers go up to %d)" % (text, MAX_INT), start)
        return ("lit", start, 1, value)

    def tuple(self):
        pos = self.i
        self.i += 1
        self.enter()
        self.open += 1
        items = []
        while True:
            self.ws()
            if self.at("]"):
                self.i += 1
                break
            items.append(self.expr())
            self.ws()
            if self.at(","):
                self.i += 1
            elif self.at("]"):
                self.i += 1
                break
            else:
                self.err("expected ',' or ']' in a list, got %s" % _desc(self.char()))
        self.open -= 1
        self.nest -= 1
        return ("list", pos, _d(("lit", pos, 0), *items), items)

    def object(self):
        pos = self.i
        self.i += 1
        self.enter()
        self.open += 1
        items = []
        while True:
            self.ws()
            if self.at("}"):
                self.i += 1
                break
            kpos = self.i
            if _is_idstart(self.char()):
                key = ("lit", kpos, 1, self.ident())
            else:
                key = self.unary()
            self.ws()
            if self.at("=") and not self.at("=="):
                self.i += 1
            elif self.at(":"):
                self.i += 1
            else:
                self.err("expected '=' or ':' after an object key, got %s" % _desc(self.char()))
            value = self.expr()
            items.append((key, value))
            self.ws()
            if self.at(","):
                self.i += 1
        self.open -= 1
        self.nest -= 1
        flat = [("lit", pos, 0)]
        for k, v in items:
            flat.append(k)
            flat.append(v)
        return ("obj", pos, _d(*flat), items)

    def call(self, pos, name):
        self.i += 1  # (
        self.enter()
        self.open += 1
        args = []
        while True:
            self.ws()
            if self.at(")"):
                self.i += 1
                break
            args.append(self.expr())
            self.ws()
            if self.at("..."):
                self.err("argument expansion (...) is not supported")
            if self.at(","):
                self.i += 1
            elif self.at(")"):
                self.i += 1
                break
            else:
                self.err("expected ',' or ')' in the arguments of %s(), got %s" % (name, _desc(self.char())))
        self.open -= 1
        self.nest -= 1
        return ("call", pos, _d(("lit", pos, 0), *args), name, args)

    def heredoc(self):
        pos = self.i
        self.i += 2
        flush = self.at("-")
        if flush:
            self.i += 1
        marker = self.ident()
        if not marker:
            self.err("expected a heredoc marker after <<")
        s = self.s
        nl = s.find("\n", self.i)
        if nl < 0 or s[self.i:nl].strip():
            self.err("expected a newline after the heredoc marker %s" % marker)
        start = nl + 1
        # The body ends at the first line whose only content is the marker.
        line_start = start
        end = -1
        while line_start <= self.n:
            line_end = s.find("\n", line_start)
            if line_end < 0:
                line_end = self.n
            if s[line_start:line_end].strip() == marker:
                end = line_start
                break
            if line_end >= self.n:
                break
            line_start = line_end + 1
        if end < 0:
            self.err("heredoc %s is not terminated" % marker, pos)
        indent = 0
        if flush:
            indent = -1
            for line in s[start:end].split("\n"):
                if line.strip():
                    k = len(line) - len(line.lstrip())
                    if indent < 0 or k < indent:
                        indent = k
            indent = max(indent, 0)
        self.i = start
        node = self.template(pos, False, end, indent)
        self.i = line_end
        return node

    def template(self, pos, quoted, stop, dedent):
        s = self.s
        parts = []
        buf = []
        strip = False
        while True:
            i = self.i
            if i >= stop:
                if quoted:
                    self.err("unterminated string", pos)
                break
            c = s[i]
            if dedent and (i == 0 or s[i - 1] == "\n"):
                k = 0
                while k < dedent and i + k < stop and s[i + k] in " \t":
                    k += 1
                if k:
                    self.i = i + k
                    continue
            if strip:
                if c in " \t\r\n":
                    self.i += 1
                    continue
                strip = False
            if quoted and c == '"':
                self.i += 1
                break
            if quoted and c == "\n":
                self.err("unterminated string (newline inside quotes)", pos)
            if quoted and c == "\\":
                buf.append(self.escape())
                continue
            two = s[i:i + 2]
            if (c == "$" or c == "%") and s[i + 1:i + 3] == c + "{":
                buf.append(c + "{")
                self.i += 3
                continue
            if two == "%{":
                self.err("template directives (%{ ... }) are not supported: use a conditional expression")
            if two == "${":
                self.i += 2
                if self.at("~"):
                    self.i += 1
                    text = "".join(buf).rstrip()
                    buf = [text] if text else []
                if buf:
                    parts.append("".join(buf))
                    buf = []
                self.enter()
                self.open += 1
                parts.append(self.expr())
                self.nest -= 1
                self.ws()
                if self.at("~}"):
                    self.i += 2
                    strip = True
                else:
                    self.expect("}", "to close the interpolation")
                self.open -= 1
                continue
            j = i + 1  # a run of plain characters at once (a newline alone: the next line may be dedented)
            while c != "\n" and j < stop and s[j] not in _TEMPLATE_STOPS:
                j += 1
            buf.append(s[i:j])
            self.i = j
        if buf:
            parts.append("".join(buf))
        if not parts:
            return ("lit", pos, 1, "")
        if len(parts) == 1 and isinstance(parts[0], str):
            return ("lit", pos, 1, parts[0])
        return ("tmpl", pos, _d(("lit", pos, 0), *[p for p in parts if not isinstance(p, str)]), parts)

    def escape(self):
        s = self.s
        pos = self.i
        c = s[pos + 1:pos + 2]
        if c in _ESCAPES:
            self.i += 2
            return _ESCAPES[c]
        if c == "u" or c == "U":
            k = 4 if c == "u" else 8
            digits = s[pos + 2:pos + 2 + k]
            if len(digits) != k or [h for h in digits if h not in _HEX]:
                self.err("\\%s needs %d hex digits" % (c, k), pos)
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                self.err("\\%s%s is not a Unicode character" % (c, digits), pos)
            self.i += 2 + k
            return chr(code)
        self.err("unknown escape \\%s in a string" % (c or "(end)"), pos)


def parse(src, budget=None):
    """Expression text -> tree (its nodes taken from `budget`, a NodeBudget); PlanError (with `.pos`) when it is
    not valid."""
    if not isinstance(src, str):
        raise _err("an expression must be text, got %s" % _type(src), 0)
    n = len(src)
    if n >= 2 and src[0] == '"' and src[n - 1] == '"':  # a plain string, the commonest attribute: no parser
        body = src[1:n - 1]
        if '"' not in body and "\\" not in body and "${" not in body and "%{" not in body and "\n" not in body:
            if budget is not None:
                budget.take()
            return ("lit", 0, 1, body)
    return _Parser(src, budget=budget).parse_all()


# ---- values and types ----------------------------------------------------------------------------------

def _type(v):
    if v is None:
        return "null"
    if v is True or v is False:
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    return "unknown"


type_name = _type


def _equal(a, b, budget=None):
    ta = _type(a)
    if ta != _type(b):
        return False
    if budget is not None:
        budget.step()
    if ta == "list":
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if not _equal(x, y, budget):
                return False
        return True
    if ta == "object":
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or not _equal(a[k], b[k], budget):
                return False
        return True
    return a == b


def format_number(v):
    """A number as HCL prints it in a template: integers without a decimal point."""
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise PlanError("number out of range")
        if v == int(v) and abs(v) < 1e15:
            return "%d" % int(v)
        return repr(v)
    return "%d" % v


def to_text(v, pos=0):
    """A value as it appears inside a string template."""
    t = _type(v)
    if t == "string":
        return v
    if t == "number":
        return format_number(v)
    if t == "bool":
        return "true" if v else "false"
    if t == "null":
        raise _err("a null value cannot be put into a string (use a conditional to choose a default)", pos)
    raise _err("a %s cannot be put into a string" % t, pos)


def _number(v, what, pos):
    if _type(v) != "number":
        raise _err("%s needs numbers, got %s" % (what, _type(v)), pos)
    return v


def _finite(v, pos):
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise _err("number out of range", pos)
    elif v > MAX_INT or v < -MAX_INT:
        raise _err("number out of range (whole numbers go up to %d)" % MAX_INT, pos)
    return v


def _arith(op, a, b, pos):
    what = "operator " + op
    a = _number(a, what, pos)
    b = _number(b, what, pos)
    if op == "+":
        return _finite(a + b, pos)
    if op == "-":
        return _finite(a - b, pos)
    if op == "*":
        return _finite(a * b, pos)
    if b == 0:
        raise _err("division by zero", pos)
    if op == "%":
        return _finite(a % b, pos)
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return _finite(a / b, pos)


# ---- functions: each takes the Budget first and accounts for what it makes BEFORE making it ---------------------

def _want(v, t, fname, n):
    if _type(v) != t:
        raise PlanError("%s(): argument %d must be a %s, got %s" % (fname, n, t, _type(v)))
    return v


def _fn_join(b, sep, items):
    _want(sep, "string", "join", 1)
    _want(items, "list", "join", 2)
    b.step(len(items))
    texts = [to_text(x) for x in items]
    n = len(sep) * max(len(texts) - 1, 0)
    for t in texts:
        n += len(t)
    b.made(n)
    return sep.join(texts)


def _fn_lookup(b, obj, key, *default):
    _want(obj, "object", "lookup", 1)
    if key in obj:
        return obj[key]
    if default:
        return default[0]
    raise PlanError("lookup(): no key %s and no default" % quote(key))


def _fn_contains(b, items, value):
    _want(items, "list", "contains", 1)
    for x in items:
        if _equal(x, value, b):
            return True
    return False


def _fn_length(b, v):
    if _type(v) not in ("list", "object", "string"):
        raise PlanError("length(): needs a list, object or string, got %s" % _type(v))
    return len(v)


def _fn_coalesce(b, *args):
    for a in args:
        if a is not None and a != "":
            return a
    raise PlanError("coalesce(): every argument is null or empty")


def _fn_concat(b, *lists):
    out = []
    for n, x in enumerate(lists):
        _want(x, "list", "concat", n + 1)
    for x in lists:
        b.step(len(x))
        if len(out) + len(x) > b.limits.value:
            raise over_limit("value", b.limits, "a list of %d elements" % (len(out) + len(x)))
        out.extend(x)
    size, depth = b.composite(out)
    return b.record(out, size, depth)


def _fn_case(b, s, upper):
    b.made(len(s))
    return s.upper() if upper else s.lower()


def _fn_trimspace(b, s):
    return s.strip()


def _fn_replace(b, s, old, new):
    if not old:
        return s
    b.step(len(s) // 64 + 1)
    count = s.count(old)
    b.made(len(s) + count * (len(new) - len(old)))
    return s.replace(old, new)


def _fn_split(b, sep, s):
    b.step(len(s) // 64 + 1)
    parts = s.count(sep) + 1 if sep else len(s)
    size = 16 + len(s) - len(sep) * (parts - 1) + 8 * parts if sep else 16 + 9 * len(s)
    b.made(size, 1)
    return b.record(s.split(sep) if sep else [c for c in s], size, 1)


def _fn_startswith(b, s, prefix):
    return s[:len(prefix)] == prefix


def _fn_endswith(b, s, suffix):
    return len(suffix) <= len(s) and s[len(s) - len(suffix):] == suffix


def _strings(name, f, nargs):
    def fn(b, *args):
        for n, a in enumerate(args[:nargs]):
            _want(a, "string", name, n + 1)
        return f(b, *args)
    return fn


# name -> (min args, max args or -1, function). Deliberately few: what boot plans need.
FUNCTIONS = {
    "join": (2, 2, _fn_join),
    "lower": (1, 1, _strings("lower", lambda b, s: _fn_case(b, s, False), 1)),
    "upper": (1, 1, _strings("upper", lambda b, s: _fn_case(b, s, True), 1)),
    "trimspace": (1, 1, _strings("trimspace", _fn_trimspace, 1)),
    "replace": (3, 3, _strings("replace", _fn_replace, 3)),
    "split": (2, 2, _strings("split", _fn_split, 2)),
    "startswith": (2, 2, _strings("startswith", _fn_startswith, 2)),
    "endswith": (2, 2, _strings("endswith", _fn_endswith, 2)),
    "lookup": (2, 3, _fn_lookup),
    "contains": (2, 2, _fn_contains),
    "length": (1, 1, _fn_length),
    "coalesce": (1, -1, _fn_coalesce),
    "concat": (1, -1, _fn_concat),
}


# ---- evaluation -----------------------------------------------------------------------------------------------

class Scope:
    """Variables an expression can reference, and the Budget of the evaluation. `get(root, attr)` returns `root`
    (attr None) or `root.attr`; subclasses resolve lazily (plan locals). Errors are PlanError without a
    position."""

    def __init__(self, variables, limits=None):
        self.variables = variables
        self.budget = Budget(limits)

    def get(self, root, attr):
        if root not in self.variables:
            raise PlanError("unknown variable %s (known: %s)" % (quote(root), ", ".join(sorted(self.variables))))
        value = self.variables[root]
        if attr is None:
            return value
        return get_attr(value, attr, root)


def get_attr(value, attr, what):
    """`value.attr` for an object, with an error naming `what` and the attributes it has."""
    if _type(value) != "object":
        raise PlanError("%s is a %s, it has no attribute %s" % (what, _type(value), quote(attr)))
    if attr not in value:
        raise PlanError("%s has no attribute %s (it has: %s)" % (what, quote(attr), some(sorted(value))))
    return value[attr]


def some(names, n=20):
    """The first `n` names, comma-separated (an object from a plan may have thousands)."""
    text = ", ".join(names[:n]) or "none"
    return text + (", ... (%d in all)" % len(names) if len(names) > n else "")


def _locate(exc, pos):
    if exc.pos is None and exc.line is None:
        exc.pos = pos
    return exc


def _root_ref(node):
    """(root, attr) when node is `root.attr` or `root["attr"]` with a literal key, else None."""
    if node[0] == "attr" and node[3][0] == "var":
        return node[3][3], node[4]
    if node[0] == "index" and node[3][0] == "var" and node[4][0] == "lit" and _type(node[4][3]) == "string":
        return node[3][3], node[4][3]
    return None


def evaluate(node, scope):
    """The value of a parsed expression; references go through `scope.get`; within the scope's Budget (every
    node is a step and a level of nesting; every value is accounted for before it is made)."""
    b = scope.budget
    b.steps += 1
    if b.steps > b.limits.steps:
        raise over_limit("steps", b.limits)
    b.enter()
    v = _evaluate(node, scope, b)
    b.depth -= 1
    return v


def _evaluate(node, scope, b):
    k = node[0]
    pos = node[1]
    if k == "lit":
        return node[3]
    ref = _root_ref(node) if k in ("attr", "index") else None
    if k == "var" or ref is not None:
        root, attr = (node[3], None) if ref is None else ref
        try:
            return scope.get(root, attr)
        except PlanError as e:
            raise _locate(e, pos) from None
    if k == "tmpl":
        parts = node[3]
        if len(parts) == 1:
            return evaluate(parts[0], scope)  # a lone interpolation keeps its type, as in HCL
        out = []
        n = 0
        for p in parts:
            t = p if isinstance(p, str) else to_text(evaluate(p, scope), p[1])
            n += len(t)
            if n > b.limits.value:
                raise _locate(over_limit("value", b.limits, "a string of more than %d bytes" % n), pos)
            out.append(t)
        try:
            b.made(n)
        except PlanError as e:
            raise _locate(e, pos) from None
        return "".join(out)
    if k == "cond":
        c = evaluate(node[3], scope)
        if _type(c) != "bool":
            raise _err("the condition before ? must be a bool, got %s" % _type(c), node[3][1])
        return evaluate(node[4] if c else node[5], scope)
    if k == "bin":
        op = node[3]
        a = evaluate(node[4], scope)
        if op == "&&" or op == "||":
            if _type(a) != "bool":
                raise _err("operator %s needs bools, got %s" % (op, _type(a)), pos)
            if (op == "&&" and not a) or (op == "||" and a):
                return a
            c = evaluate(node[5], scope)
            if _type(c) != "bool":
                raise _err("operator %s needs bools, got %s" % (op, _type(c)), pos)
            return c
        c = evaluate(node[5], scope)
        if op == "==" or op == "!=":
            try:
                same = _equal(a, c, b)
            except PlanError as e:
                raise _locate(e, pos) from None
            return same if op == "==" else not same
        if op in ("<", "<=", ">", ">="):
            a = _number(a, "operator " + op, pos)
            c = _number(c, "operator " + op, pos)
            if op == "<":
                return a < c
            if op == "<=":
                return a <= c
            if op == ">":
                return a > c
            return a >= c
        return _arith(op, a, c, pos)
    if k == "un":
        x = evaluate(node[4], scope)
        if node[3] == "!":
            if _type(x) != "bool":
                raise _err("operator ! needs a bool, got %s" % _type(x), pos)
            return not x
        return -_number(x, "unary -", pos)
    if k == "list":
        items = [evaluate(x, scope) for x in node[3]]
        try:
            size, depth = b.composite(items)
        except PlanError as e:
            raise _locate(e, pos) from None
        return b.record(items, size, depth)
    if k == "obj":
        out = {}
        for kn, vn in node[3]:
            key = evaluate(kn, scope)
            if _type(key) not in ("string", "number", "bool"):
                raise _err("an object key must be a string, got %s" % _type(key), kn[1])
            out[to_text(key, kn[1])] = evaluate(vn, scope)
        try:
            size, depth = b.composite(list(out.values()), out)
        except PlanError as e:
            raise _locate(e, pos) from None
        return b.record(out, size, depth)
    if k == "attr":
        return _attr_of(evaluate(node[3], scope), node[4], pos)
    if k == "index":
        return _index(evaluate(node[3], scope), evaluate(node[4], scope), pos)
    if k == "call":
        return _call(node, scope)
    raise _err("unknown expression node %s" % quote(k), pos)


def _attr_of(value, name, pos):
    try:
        return get_attr(value, name, "the value")
    except PlanError as e:
        raise _locate(e, pos) from None


def _index(value, key, pos):
    t = _type(value)
    if t == "list":
        if _type(key) != "number" or key != int(key):
            raise _err("a list index must be a whole number, got %s" % _type(key), pos)
        n = int(key)
        if n < 0 or n >= len(value):
            raise _err("index %d out of range (the list has %d elements)" % (n, len(value)), pos)
        return value[n]
    if t == "object":
        if _type(key) != "string":
            raise _err("an object key must be a string, got %s" % _type(key), pos)
        return _attr_of(value, key, pos)
    raise _err("cannot index a %s" % t, pos)


def _call(node, scope):
    name, args, pos = node[3], node[4], node[1]
    if name not in FUNCTIONS:
        raise _err("unknown function %s() (available: %s)" % (name, ", ".join(sorted(FUNCTIONS))), pos)
    lo, hi, fn = FUNCTIONS[name]
    if len(args) < lo or (hi >= 0 and len(args) > hi):
        want = "%d" % lo if lo == hi else ("%d or more" % lo if hi < 0 else "%d to %d" % (lo, hi))
        raise _err("%s() takes %s arguments, got %d" % (name, want, len(args)), pos)
    values = [evaluate(a, scope) for a in args]
    try:
        return fn(scope.budget, *values)
    except PlanError as e:
        raise _locate(e, pos) from None


def references(node, out=None):
    """Every reference in a parsed expression: a list of (root, attr or None, pos); and function calls as
    ("()", name, pos). For static checks (unknown names, cycles between locals) without evaluating."""
    if out is None:
        out = []
    k = node[0]
    if k == "lit":
        return out
    if k == "var":
        out.append((node[3], None, node[1]))
        return out
    ref = _root_ref(node) if k in ("attr", "index") else None
    if ref is not None:
        out.append((ref[0], ref[1], node[1]))
        return out
    if k == "tmpl":
        for p in node[3]:
            if not isinstance(p, str):
                references(p, out)
    elif k in ("cond", "bin"):
        for child in node[3:]:
            if isinstance(child, tuple):
                references(child, out)
    elif k == "un":
        references(node[4], out)
    elif k == "list":
        for x in node[3]:
            references(x, out)
    elif k == "obj":
        for kn, vn in node[3]:
            references(kn, out)
            references(vn, out)
    elif k == "attr":
        references(node[3], out)
    elif k == "index":
        references(node[3], out)
        references(node[4], out)
    elif k == "call":
        out.append(("()", node[3], node[1]))
        for a in node[4]:
            references(a, out)
    return out


class Expr:
    """One attribute's expression: its text, the line it starts on (for messages) and its parsed tree."""

    def __init__(self, src, line=None, node=None, budget=None):
        self.src = src
        self.line = line
        try:
            if budget is not None:
                budget.take()  # the attribute itself
            self.node = node or parse(src, budget)  # `node`: the tree an HCL reader already made of this very text
        except PlanError as e:
            raise self.place(e) from None

    def line_at(self, pos):
        if self.line is None:
            return None
        return self.line + self.src[:pos].count("\n")

    def place(self, exc):
        """Turn an error's offset in this expression into a line number (once)."""
        if exc.line is None:
            exc.line = self.line_at(exc.pos) if exc.pos is not None else self.line
        return exc

    def evaluate(self, scope):
        depth = scope.budget.depth
        try:
            return evaluate(self.node, scope)
        except PlanError as e:
            scope.budget.depth = depth
            raise self.place(e) from None

    def references(self):
        """references() of the tree, each with a line number instead of an offset."""
        return [(r, a, self.line_at(p)) for r, a, p in references(self.node)]

    def literal(self):
        """(True, value) when the expression is a constant (no references), else (False, None)."""
        if self.node[0] == "lit":
            return True, self.node[3]
        return False, None
