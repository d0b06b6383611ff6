"""bootplan: portable core package (runs on MicroPython and CPython)."""


def quote(text):
    """`text` in double quotes with backslash escapes (like Go's %q, enough for messages)."""
    out = []
    for c in str(text):
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 32 or ord(c) == 127:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


class PlanError(ValueError):
    """Everything wrong with a plan: syntax, references, types, schema, selection.

    Carries `file`, `line` (1-based, where known) and `target` (a target's name, where one is concerned);
    str() gives `file:line: target "name": message`. Inner code raises it bare and outer code fills in the
    location it knows (`locate` never overwrites what is already set).
    """

    def __init__(self, msg, file=None, line=None, target=None):
        super().__init__(msg)
        self.msg = msg
        self.file = file
        self.line = line
        self.target = target
        self.pos = None  # offset inside an expression's text, turned into `line` by its owner

    def locate(self, file=None, line=None, target=None):
        """Fill in the location fields still unknown; returns self (for `raise exc.locate(...)`)."""
        if self.file is None:
            self.file = file
        if self.line is None:
            self.line = line
        if self.target is None:
            self.target = target
        return self

    def __str__(self):
        head = ""
        if self.file:
            head = self.file + (":%d" % self.line if self.line else "") + ": "
        elif self.line:
            head = "line %d: " % self.line
        if self.target:  # "" marks an error that is no target's (a local's)
            head += "target %s: " % quote(self.target)
        return head + self.msg
