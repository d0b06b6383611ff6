"""The original's post-plan command-line templates (Go text/template, REFERENCE §2.2), the subset its plans
use: `{{.Field}}`, `{{if .Field}}...{{else if .Field}}...{{else}}...{{end}}` (nested), `{{-`/`-}}` trimming.
Anything else (pipelines, functions, range, unknown fields, unbalanced blocks) is a TemplateError saying
what, so template text never reaches a kernel. Portable (MicroPython and CPython).

Values are strings or lists of strings; a list prints as Go prints a []string (`[a b]`); a field is true when
non-empty, as in Go."""

SUPPORTED = "{{.Field}}, {{if .Field}}, {{else}}, {{else if .Field}}, {{end}}"


class TemplateError(ValueError):
    """A template this renderer refuses; the message names the action."""


def _show(value):
    if isinstance(value, (list, tuple)):
        return "[%s]" % " ".join(value)
    return value


def _field(expr, values):
    if not expr.startswith(".") or len(expr) < 2:
        raise TemplateError("{{%s}} is not supported (supported: %s)" % (expr, SUPPORTED))
    name = expr[1:]
    if name not in values:
        raise TemplateError("{{%s}}: unknown field .%s (known: %s)" % (expr, name, ", ".join(sorted(values))))
    return values[name]


def _actions(text):
    """[(kind, payload)]: ("text", s) and ("action", expr), `{{-`/`-}}` trimming applied."""
    out = []
    i = 0
    while True:
        j = text.find("{{", i)
        if j < 0:
            out.append(("text", text[i:]))
            return out
        k = text.find("}}", j + 2)
        if k < 0:
            raise TemplateError("unterminated {{ at offset %d" % j)
        inner = text[j + 2:k]
        piece = text[i:j]
        if inner.startswith("- "):
            piece, inner = piece.rstrip(), inner[1:]
        trim_after = inner.endswith(" -")
        if trim_after:
            inner = inner[:-1]
        out.append(("text", piece))
        out.append(("action", inner.strip()))
        i = k + 2
        if trim_after:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1


def render(text, values):
    """`text` with its actions done from `values` (name -> string or list of strings)."""
    if "{{" not in text:
        return text
    out = []
    stack = []  # per open {{if}}: [emitting now, a branch already taken, emitting outside]
    emitting = True
    for kind, payload in _actions(text):
        if kind == "text":
            if emitting:
                out.append(payload)
            continue
        words = payload.split()
        head = words[0] if words else ""
        if head == "if" and len(words) == 2:
            cond = bool(_field(words[1], values))
            stack.append([cond, cond, emitting])
            emitting = emitting and cond
        elif head == "else" and len(words) in (1, 3) and (len(words) == 1 or words[1] == "if"):
            if not stack:
                raise TemplateError("{{%s}} without {{if}}" % payload)
            top = stack[-1]
            cond = (not top[1]) and (len(words) == 1 or bool(_field(words[2], values)))
            top[1] = top[1] or cond
            emitting = top[2] and cond
        elif head == "end" and len(words) == 1:
            if not stack:
                raise TemplateError("{{end}} without {{if}}")
            emitting = stack.pop()[2]
        elif len(words) == 1 and head.startswith("."):
            value = _field(head, values)
            if emitting:
                out.append(_show(value))
        else:
            raise TemplateError("{{%s}} is not supported (supported: %s)" % (payload, SUPPORTED))
    if stack:
        raise TemplateError("{{if}} without {{end}}")
    return "".join(out)


def _prefix(netmask):
    bits = 0
    for part in netmask.split("."):
        try:
            bits += bin(int(part) & 255).count("1")
        except ValueError:
            return 0
    return bits


def values(address="", netmask="", gateway="", iface="", dns=(), ref=None, modloop_url=""):
    """Every field the original knew (REFERENCE §2.2), from a lease and the primary registry reference
    (`ref`: registry, scheme); a field without a value is empty, as Go's missingkey=zero."""
    dns = list(dns)
    out = {"IP": address, "Netmask": netmask, "Gateway": gateway, "Iface": iface, "DNS": dns[0] if dns else "",
           "DNSAll": dns, "ModloopURL": modloop_url, "CIDR": "", "IPSpec": "",
           "Registry": "", "RegistryScheme": "", "RegistryBase": ""}
    if address:
        out["CIDR"] = "%s/%d" % (address, _prefix(netmask))
        out["IPSpec"] = ":".join([address, "", gateway, netmask, "", iface, "off"] + dns[:2])
    if ref is not None:
        out.update(Registry=ref.registry, RegistryScheme=ref.scheme,
                   RegistryBase="%s://%s/v2" % (ref.scheme, ref.registry))
    return out
