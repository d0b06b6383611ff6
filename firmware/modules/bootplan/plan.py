"""Boot plans: the schema of the original (REFERENCE §2.2), evaluation, and target selection (§2.3, §2.4).
Portable: MicroPython and CPython. Works on the parsed form (see bootplan.hcl); `load` reads HCL text on
CPython.

    plan = Plan(parsed)                         # schema and expression syntax checked, errors located
    plan.check()                                # references, cycles, types, sources: for every arch
    t = plan.select("arm64", target="", menu=None, lldp={"port_id": "Eth1"})
    plan.resolve(t, "arm64", lldp)              # -> dict: name, label, index/kernel/..., cmdline, disk
    render(parsed, "arm64", lldp=...)           # both at once

Unlike the original, a local may use other locals (in any order; cycles are reported with their names),
and a plan without default_target whose arch has exactly one target boots that target.
"""

import arches
from bootplan import PlanError, quote
from bootplan.cmdline import duration
from bootplan.expr import (
    DEFAULT_LIMITS,
    Budget,
    Expr,
    NodeBudget,
    Scope,
    format_number,
    get_attr,
    over_limit,
    some,
    type_name,
)

FORMAT = "cloud-boot.plan.v1"
HCL_MEDIA_TYPE = "application/vnd.cloud-boot.plan.v1+hcl"  # the original's plan layer (REFERENCE §2.1)
PARSED_MEDIA_TYPE = "application/vnd.cloud-boot.plan.v1+json"  # ours: the parsed form, for the firmware
ARCHES = tuple([a.go for a in arches.ARCHES])  # Go's names, as plans and OCI platforms spell them
LLDP_KEYS = ("chassis_id", "port_id", "system_name", "system_desc", "port_desc", "mgmt_addr")
SELF_KEYS = ("name", "arch", "version")
OCI_FIELDS = ("index", "kernel", "initrd", "modules")
STRING_FIELDS = ("label", "index", "kernel", "initrd", "modules", "subplan", "exit")
TARGET_ATTRS = ("arch", "version", "label", "index", "kernel", "initrd", "modules", "cmdline", "subplan", "exit")
DISK_ATTRS = ("device", "fs", "kernel", "initrd")
MENU_ATTRS = ("timeout", "prompt")
TOP_ATTRS = ("default_target", "dns", "mirrors", "exit")
#: How the Linux init hands over (`exit`, per target or for the whole plan; cloudboot.exit= wins): kexec
#: (Path A) or reboot (Path C: stage on the cache ESP, boot entry, reboot). Ours; the original had only the
#: command-line key.
EXITS = ("kexec", "reboot")
FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "zfs")
DEFAULT_PROMPT = "Select a boot target:"
MAX_SUBPLAN_DEPTH = 8
_ROOT_BITS = {"arch": 1, "lldp": 2}
# What `check` evaluates each target with, besides "no LLDP frame".
SAMPLE_LLDP = {"chassis_id": "00:00:5e:00:53:01", "port_id": "Ethernet1", "system_name": "switch1",
               "system_desc": "switch", "port_desc": "uplink", "mgmt_addr": "192.0.2.1"}


def canonical_arch(arch):
    """Go's name for an architecture (`x86_64` -> `amd64`, `aarch64` -> `arm64`); others lowercased."""
    return arches.go_name((arch or "").strip().lower())


def lldp_object(values=None):
    """The `lldp` variable from what an LLDP listener saw (None or {} = nothing): every key a string,
    `available` true iff system_name, chassis_id or port_id is non-empty (as in the original)."""
    values = values or {}
    out = {}
    for k in values:
        if k not in LLDP_KEYS and k != "available":
            raise PlanError("unknown LLDP key %s (known: %s)" % (quote(k), ", ".join(LLDP_KEYS)))
    for k in LLDP_KEYS:
        v = values.get(k)
        out[k] = "" if v is None else str(v)
    out["available"] = bool(out["system_name"] or out["chassis_id"] or out["port_id"])
    return out


def parse_duration(value):
    """A menu timeout in seconds: a number, a bare integer string ("12"), a Go duration ("5s", "1m30s",
    "1.5s", "500ms"; bootplan.cmdline's grammar, the command line's) or "" (0); never negative."""
    if value is None:
        return 0
    if type_name(value) == "number":
        if value < 0:
            raise PlanError("timeout must not be negative")
        return value
    if type_name(value) != "string":
        raise PlanError("timeout must be a string or a number, got %s" % type_name(value))
    text = value.strip()
    if text == "":
        return 0
    try:
        total = duration(text) if text[0] not in "+-" else -1
    except ValueError:
        total = -1
    if total < 0:
        raise PlanError("timeout %s is not a duration (like 5s, 1m30s, or a number of seconds)" % quote(value))
    if total == int(total):
        return int(total)
    return total


# ---- the parsed form ------------------------------------------------------------------------------------------

def _line(value):
    """A line number from the parsed form: a whole number from 1 (anything else, NaN included, is no line)."""
    if type(value) is int and 0 < value < (1 << 31):
        return value
    return None


def _attrs(node, where, file, budget=None):
    raw = node.get("attrs", {})
    if not isinstance(raw, dict):
        raise PlanError("malformed parsed plan: %s attrs is not an object" % where, file=file)
    out = {}
    for name in raw:
        a = raw[name]
        if not isinstance(a, dict) or not isinstance(a.get("expr"), str):
            raise PlanError("malformed parsed plan: attribute %s in %s" % (quote(name), where), file=file)
        line = _line(a.get("line"))
        try:
            out[name] = Expr(a["expr"], line, getattr(a, "node", None), budget)
        except PlanError as e:
            raise e.locate(file) from None
    return out


def _blocks(node, where, file):
    raw = node.get("blocks", [])
    if not isinstance(raw, list):
        raise PlanError("malformed parsed plan: %s blocks is not a list" % where, file=file)
    for b in raw:
        if not isinstance(b, dict) or not isinstance(b.get("type"), str) or not isinstance(b.get("labels", []), list):
            raise PlanError("malformed parsed plan: a block in %s" % where, file=file)
        for label in b.get("labels", []):
            if not isinstance(label, str):
                raise PlanError("malformed parsed plan: a label of a %s block is not a string" % quote(b["type"]),
                                file=file, line=_line(b.get("line")))
    return raw


def _only(attrs, allowed, where, file):
    for name in attrs:
        if name not in allowed:
            raise PlanError("unknown attribute %s in %s (allowed: %s)" % (quote(name), where, ", ".join(allowed)),
                            file=file, line=attrs[name].line)


class Target:
    """One `target "name" { ... }` block, compiled (expressions parsed, not yet evaluated)."""

    def __init__(self, name, line, attrs, disk, disk_line):
        self.name = name
        self.line = line
        self.attrs = attrs
        self.disk = disk  # None or {attr: Expr}
        self.disk_line = disk_line
        e = attrs.get("arch")
        fixed, value = (True, "") if e is None else e.literal()
        self.fixed_arch = canonical_arch(value) if fixed and isinstance(value, str) else None

    def __repr__(self):
        return "Target(%r)" % self.name

    def _string(self, field, scope, allow_number=False):
        e = self.attrs.get(field)
        if e is None:
            return ""
        return _as_string(e, field, scope, allow_number)

    def arch_filter(self, scope):
        """The target's `arch` attribute in Go's spelling ("" = every arch)."""
        if self.fixed_arch is not None:
            return self.fixed_arch
        return canonical_arch(self._string("arch", scope))

    def matches(self, scope, arch):
        a = self.arch_filter(scope)
        return a == "" or a == canonical_arch(arch)

    def self_object(self, scope):
        return {"name": self.name, "arch": self._string("arch", scope), "version": self._string("version", scope, True)}

    def label(self, scope):
        return self._string("label", scope.child(self.self_object(scope)))

    def resolve(self, scope):
        """Every field evaluated, the cmdline joined, the one-source rule applied."""
        me = self.self_object(scope)
        sc = scope.child(me)
        out = {"name": self.name, "arch": canonical_arch(me["arch"]), "version": me["version"]}
        for f in STRING_FIELDS:
            out[f] = self._string(f, sc)
        out["cmdline"] = _cmdline(self.attrs.get("cmdline"), sc)
        _check_exit(out["exit"], self.attrs.get("exit"))
        out["cmdline_line"] = self.attrs["cmdline"].line if "cmdline" in self.attrs else self.line  # for errors
        out["disk"] = None
        if self.disk is not None:
            out["disk"] = _disk(self.disk, self.disk_line, sc)
        sources = []
        for f in OCI_FIELDS:
            if out[f]:
                sources.append(f)
                break
        if out["disk"] is not None:
            sources.append("disk")
        if out["subplan"]:
            sources.append("subplan")
        if len(sources) != 1:
            how = "set exactly one of an OCI ref (index/kernel/initrd/modules), a disk {} block or subplan"
            if not sources:
                raise PlanError("no source: " + how, line=self.line)
            names = sources[0] + " and " + sources[1] if len(sources) == 2 else "index/kernel, disk and subplan"
            raise PlanError("%s sources (%s): %s" % ("two" if len(sources) == 2 else "three", names, how),
                            line=self.line)
        out["source"] = "oci" if sources[0] in OCI_FIELDS else sources[0]
        return out


def _as_string(e, field, scope, allow_number=False):
    v = e.evaluate(scope)
    t = type_name(v)
    if t == "null":
        return ""
    if t == "string":
        return v
    if allow_number and t == "number":
        return format_number(v)
    raise PlanError("%s must be a string, got %s" % (field, t), line=e.line)


def _check_exit(value, e):
    if value and value not in EXITS:
        raise PlanError("exit %s is not one of %s" % (quote(value), ", ".join(EXITS)), line=e.line)


def _check_reference(text, field, e):
    """PlanError unless `text` is an OCI reference (registry/repository[:tag][@digest]), as a pull would read it."""
    from oci.errors import OciError
    from oci.ref import parse

    try:
        parse(text)
    except OciError as exc:
        raise PlanError("%s %s is not an OCI reference: %s" % (field, quote(text[:200]), exc), line=e.line) from None


def _cmdline(e, scope):
    if e is None:
        return ""
    v = e.evaluate(scope)
    t = type_name(v)
    if t == "null":
        return ""
    if t == "string":
        return v
    if t != "list":
        raise PlanError("cmdline must be a string or a list of strings, got %s" % t, line=e.line)
    words = []
    for n, item in enumerate(v):
        it = type_name(item)
        if it == "null" or item == "":
            continue
        if it != "string":
            raise PlanError("cmdline element %d must be a string, got %s" % (n + 1, it), line=e.line)
        words.append(item)
    return " ".join(words)


def _disk(attrs, line, scope):
    out = {}
    for f in DISK_ATTRS:
        out[f] = _as_string(attrs[f], "disk." + f, scope) if f in attrs else ""
    if not out["device"]:
        raise PlanError("disk.device is empty", line=attrs["device"].line)
    if out["fs"] and out["fs"] not in FILESYSTEMS:
        raise PlanError("disk.fs %s is not one of %s" % (quote(out["fs"]), ", ".join(FILESYSTEMS)),
                        line=attrs["fs"].line)
    if out["fs"] == "zfs" and not (out["kernel"] and out["initrd"]):
        raise PlanError("a zfs disk needs kernel and initrd (paths inside the dataset)", line=line)
    return out


class _Scope(Scope):
    """arch, lldp and local.* (evaluated lazily, once, cycles reported); self.* inside a target."""

    def __init__(self, plan, arch, lldp, base=None, me=None):
        self.plan = plan
        self.arch = arch
        self.lldp = lldp
        self.base = base
        self.me = me
        self.values = {}
        self.stack = []
        self.budget = base.budget if base is not None else Budget(plan.limits)

    def child(self, me):
        return _Scope(self.plan, self.arch, self.lldp, base=self, me=me)

    def get(self, root, attr):
        if root == "arch":
            return self.arch if attr is None else get_attr(self.arch, attr, "arch")
        if root == "lldp":
            return self.lldp if attr is None else get_attr(self.lldp, attr, "lldp")
        if root == "local":
            if attr is None:
                out = {}
                for name in self.plan.locals:
                    out[name] = self.local(name)
                return out
            return self.local(attr)
        if root == "self":
            if self.me is None:
                raise PlanError("self is only known inside a target (in label, index, kernel, initrd, modules, "
                                "cmdline, subplan and disk)")
            if attr is None:
                return self.me
            if attr not in SELF_KEYS:
                raise PlanError("self has no attribute %s (only name, arch and version)" % quote(attr))
            return self.me[attr]
        raise PlanError("unknown variable %s (plans know arch, lldp.*, local.* and self.*)" % quote(root))

    def local(self, name):
        if self.base is not None:
            return self.base.local(name)
        if name in self.values:
            return self.values[name]
        exprs = self.plan.locals
        if name not in exprs:
            raise PlanError("no local %s (locals: %s)" % (quote(name), some(sorted(exprs))))
        if name in self.stack:
            cycle = self.stack[self.stack.index(name):] + [name]
            e = PlanError("locals form a cycle: %s" % " -> ".join(["local." + n for n in cycle]))
            e.target = ""  # not a target's fault
            e.line = exprs[cycle[0]].line
            raise e
        self.stack.append(name)
        try:
            value = exprs[name].evaluate(self)
        except PlanError as e:
            if e.target is None:
                e.target = ""
                e.msg = "local %s: %s" % (quote(name), e.msg)
            raise
        finally:
            self.stack.pop()
        self.values[name] = value
        return value


class Plan:
    """A compiled plan: `targets` (declaration order), `locals`, `menu`, `default_target`, `dns`, `mirrors`
    (Exprs)."""

    def __init__(self, parsed, file=None, limits=None):
        if not isinstance(parsed, dict):
            raise PlanError("malformed parsed plan: not an object", file=file)
        fmt = parsed.get("format", FORMAT)
        if fmt != FORMAT:
            raise PlanError("parsed plan format %s is not %s" % (quote(str(fmt)[:100]), FORMAT), file=file)
        named = parsed.get("file")
        self.file = file or (named if isinstance(named, str) and named else None) or "plan.hcl"
        self.limits = limits or DEFAULT_LIMITS
        f = self.file
        budget = NodeBudget(self.limits)  # the expressions compiled here (those the HCL reader made are not again)
        top = _attrs(parsed, "the plan", f, budget)
        _only(top, TOP_ATTRS, "the plan", f)
        self.default_target = top.get("default_target")
        self.dns = top.get("dns")
        self.mirrors = top.get("mirrors")
        self.exit = top.get("exit")
        self.menu = None
        self.menu_line = None
        self.locals = {}
        self.targets = []
        blocks = _blocks(parsed, "the plan", f)
        count = 0
        for b in blocks:
            if b["type"] == "target":
                count += 1
        if count > self.limits.targets:
            raise over_limit("targets", self.limits, "%d targets" % count).locate(f)
        for b in blocks:
            kind, labels, line = b["type"], b.get("labels", []), _line(b.get("line"))
            try:
                attrs = _attrs(b, kind, f, budget)
                inner = _blocks(b, kind, f)
            except PlanError as e:
                if kind == "target" and len(labels) == 1:
                    e.locate(target=labels[0])
                raise
            if kind == "target":
                if len(labels) != 1 or not isinstance(labels[0], str) or not labels[0]:
                    raise PlanError('a target block needs one name: target "name" { ... }', file=f, line=line)
                self.targets.append(self._target(labels[0], line, attrs, inner, budget))
                continue
            if kind not in ("locals", "menu"):
                raise PlanError("unknown block %s (allowed: target, locals, menu)" % quote(kind), file=f, line=line)
            if labels:
                raise PlanError("a %s block takes no name" % kind, file=f, line=line)
            if inner:
                raise PlanError("a %s block holds attributes only, not a %s block" % (kind, quote(inner[0]["type"])),
                                file=f, line=_line(inner[0].get("line")))
            if kind == "menu":
                if self.menu is not None:
                    raise PlanError("a second menu block (the first is on line %s)" % self.menu_line, file=f, line=line)
                _only(attrs, MENU_ATTRS, "menu", f)
                self.menu = attrs
                self.menu_line = line
            else:
                for name in attrs:
                    if name in self.locals:
                        raise PlanError("local %s is defined twice" % quote(name), file=f, line=attrs[name].line)
                    self.locals[name] = attrs[name]

    def _target(self, name, line, attrs, inner, budget=None):
        f = self.file
        if "disk" in attrs:
            raise PlanError("disk is a block (disk { device = \"...\" }), not an attribute", file=f,
                            line=attrs["disk"].line, target=name)
        _only_target(attrs, name, f)
        disk = None
        disk_line = None
        for b in inner:
            if b["type"] != "disk":
                raise PlanError("unknown block %s in a target (only disk)" % quote(b["type"]), file=f,
                                line=_line(b.get("line")), target=name)
            if disk is not None:
                raise PlanError("a second disk block", file=f, line=_line(b.get("line")), target=name)
            if b.get("labels"):
                raise PlanError("a disk block takes no name", file=f, line=_line(b.get("line")), target=name)
            disk = _attrs(b, "disk", f, budget)
            disk_line = _line(b.get("line"))
            if _blocks(b, "disk", f):
                raise PlanError("a disk block holds attributes only", file=f, line=disk_line, target=name)
            for a in disk:
                if a not in DISK_ATTRS:
                    raise PlanError("unknown attribute %s in disk (allowed: %s)" % (quote(a), ", ".join(DISK_ATTRS)),
                                    file=f, line=disk[a].line, target=name)
            if "device" not in disk:
                raise PlanError("disk needs device (a /dev path, LABEL=, UUID=, PARTLABEL=, PARTUUID= or a "
                                "zfs dataset)", file=f, line=disk_line, target=name)
        return Target(name, line, attrs, disk, disk_line)

    # ---- evaluation -------------------------------------------------------------------------------------

    def scope(self, arch, lldp=None):
        """A fresh evaluation context: `arch` (Go's spelling), `lldp` (see lldp_object), lazy locals."""
        return _Scope(self, canonical_arch(arch), lldp_object(lldp))

    def _top_string(self, e, field, scope):
        if e is None:
            return ""
        try:
            return _as_string(e, field, scope)
        except PlanError as exc:
            raise exc.locate(self.file) from None

    def _exit(self, scope):
        value = self._top_string(self.exit, "exit", scope)
        try:
            _check_exit(value, self.exit)
        except PlanError as exc:
            raise exc.locate(self.file) from None
        return value

    def settings(self, arch, lldp=None, scope=None):
        """Plan-level values: default_target, dns (list), mirrors ([(scheme or None, host[:port])], registries
        tried after each reference's own: oci.mirrors), menu (None or {timeout (s), prompt}), exit."""
        sc = scope or self.scope(arch, lldp)
        out = {"default_target": self._top_string(self.default_target, "default_target", sc),
               "dns": self._string_list(self.dns, "dns", sc), "mirrors": [], "exit": self._exit(sc)}
        if self.mirrors is not None:
            from oci.errors import BadReference
            from oci.mirrors import parse_mirror

            for m in self._string_list(self.mirrors, "mirrors", sc):
                try:
                    out["mirrors"].append(parse_mirror(m))
                except BadReference as exc:
                    raise PlanError(str(exc), file=self.file, line=self.mirrors.line) from None
        out["menu"] = None
        if self.menu is not None:
            timeout = 0
            if "timeout" in self.menu:
                e = self.menu["timeout"]
                try:
                    timeout = parse_duration(e.evaluate(sc))
                except PlanError as exc:
                    raise exc.locate(self.file, e.line) from None
            prompt = self._top_string(self.menu.get("prompt"), "prompt", sc) or DEFAULT_PROMPT
            out["menu"] = {"timeout": timeout, "prompt": prompt}
        return out

    def _string_list(self, e, name, sc):
        """A top-level list of strings (a lone string is a list of one; empty strings dropped)."""
        if e is None:
            return []
        try:
            value = e.evaluate(sc)
        except PlanError as exc:
            raise exc.locate(self.file) from None
        if type_name(value) == "string":
            value = [value]
        if type_name(value) != "list" or [d for d in value if type_name(d) != "string"]:
            raise PlanError("%s must be a list of strings" % name, file=self.file, line=e.line)
        return [d for d in value if d]

    def _in_target(self, target, fn, *args):
        try:
            return fn(*args)
        except PlanError as exc:
            raise exc.locate(self.file, target.line, target.name) from None

    def options(self, arch, lldp=None, scope=None):
        """Targets for this arch (no arch filter, or a matching one), in declaration order."""
        sc = scope or self.scope(arch, lldp)
        return [t for t in self.targets if self._in_target(t, t.matches, sc, arch)]

    def menu_entries(self, arch, lldp=None):
        """[(name, label or name)] of the menu options, for a menu to draw."""
        sc = self.scope(arch, lldp)
        return [(t.name, self._in_target(t, t.label, sc) or t.name) for t in self.options(arch, scope=sc)]

    def pick(self, name, arch, lldp=None, scope=None):
        """The target called `name` for `arch` (REFERENCE §2.3 step 5); empty name -> default_target."""
        sc = scope or self.scope(arch, lldp)
        arch = canonical_arch(arch)
        line = None
        if not name:
            name = self.settings(arch, scope=sc)["default_target"]
            line = self.default_target.line if name else None
        if not name:
            if len(self.targets) == 1:
                t = self.targets[0]
                if not self._in_target(t, t.matches, sc, arch):
                    raise PlanError("the only target is for arch %s, not %s" % (t.arch_filter(sc), arch),
                                    file=self.file, line=t.line, target=t.name)
                return t
            options = self.options(arch, scope=sc)
            if len(options) == 1:
                return options[0]
            if not options:
                raise PlanError("no target for arch %s (%s)" % (arch, self._archs(sc)), file=self.file)
            raise PlanError("no default_target, and %d targets for arch %s (%s): name one (cloudboot.target=)"
                            % (len(options), arch, some([t.name for t in options])), file=self.file)
        others = []
        for t in self.targets:
            if t.name == name:
                if self._in_target(t, t.matches, sc, arch):
                    return t
                others.append(t.arch_filter(sc))
        if others:
            raise PlanError("no target %s for arch %s (it is for %s)" % (quote(name), arch, ", ".join(others)),
                            file=self.file, line=line)
        raise PlanError("no target %s (targets: %s)" % (quote(name), some(self.names())),
                        file=self.file, line=line)

    def names(self):
        """Target names, first occurrence order."""
        out = []
        seen = set()
        for t in self.targets:
            if t.name not in seen:
                seen.add(t.name)
                out.append(t.name)
        return out

    def _archs(self, sc):
        if not self.targets:
            return "the plan has no targets"
        return some(["%s is for %s" % (t.name, t.arch_filter(sc) or "every arch") for t in self.targets])

    def select(self, arch, target="", menu=None, lldp=None, ask=None):
        """REFERENCE §2.3: cloudboot.target wins; cloudboot.menu=0 -> default; a menu (cloudboot.menu=1 or a
        menu block) with more than one option asks `ask(entries, default, settings)` for a name, and falls
        back to the default if it fails. Returns the Target."""
        sc = self.scope(arch, lldp)
        if target:
            return self.pick(target, arch, scope=sc)
        menu = "" if menu is None else str(menu)
        if menu == "0" or not (menu == "1" or self.menu is not None) or ask is None:
            return self.pick("", arch, scope=sc)
        options = self.options(arch, scope=sc)
        if len(options) <= 1:
            return self.pick("", arch, scope=sc)
        settings = self.settings(arch, scope=sc)
        if settings["menu"] is None:
            settings["menu"] = {"timeout": 0, "prompt": DEFAULT_PROMPT}
        entries = [(t.name, self._in_target(t, t.label, sc) or t.name) for t in options]
        default = settings["default_target"]
        if default not in [name for name, _ in entries]:
            default = entries[0][0]  # as the original's menu: a default not offered -> the first option
        try:
            choice = ask(entries, default, settings)
        except Exception:  # a broken console must not stop the boot: take the default
            choice = ""
        return self.pick(choice or default, arch, scope=sc)

    def resolve(self, target, arch, lldp=None, scope=None):
        """The target fully evaluated for `arch` (dict; see Target.resolve), errors located; `exit` is the
        target's, else the plan's. Every OCI reference it names (index, kernel, initrd, modules, subplan) must
        read as one, the way a pull reads it: a bad one is this plan's error, at its line, not a pull's."""
        sc = scope or self.scope(arch, lldp)
        out = self._in_target(target, target.resolve, sc)
        if not out["exit"]:
            out["exit"] = self._exit(sc)
        for field in OCI_FIELDS + ("subplan",):
            if out[field]:
                self._in_target(target, _check_reference, out[field], field, target.attrs[field])
        return out

    # ---- static checks -----------------------------------------------------------------------------------

    def check(self):
        """Everything that can be known without booting: every reference names something, locals have no
        cycle, every target evaluates (types, one source) for every arch with and without LLDP, names are
        unique per arch, default_target exists. Returns {arch: [target names]}; raises PlanError."""
        f = self.file
        for name in self.locals:
            self._check_refs(self.locals[name], False, None)
        self._check_cycles()
        for e in (self.default_target, self.dns, self.mirrors, self.exit):
            if e is not None:
                self._check_refs(e, False, None)
        for e in (self.menu or {}).values():
            self._check_refs(e, False, None)
        for t in self.targets:
            for a in t.attrs:
                self._check_refs(t.attrs[a], a not in ("arch", "version"), t)
            for a in (t.disk or {}):
                self._check_refs(t.disk[a], True, t)
        out = {}
        first = True
        flags = self._dependencies()
        done = set()
        for ai in range(len(ARCHES)):
            arch = ARCHES[ai]
            for li in (0, 1):
                lldp = SAMPLE_LLDP if li else None
                sc = self.scope(arch, lldp)
                try:
                    self._check_arch(arch, sc, out, (flags, done, ai, li))
                except PlanError as e:
                    if not first:  # the first pass passed: this error depends on the arch or on LLDP
                        e.msg += " [when arch = %s, %s]" % (arch, "LLDP seen" if lldp else "no LLDP")
                    raise e.locate(f) from None
                first = False
        return out

    def _dependencies(self):
        """For each target, whether its values can depend on `arch` (bit 1) or on `lldp` (bit 2), through locals
        too: a target that depends on neither is resolved once by check(), not once per arch and LLDP case."""
        direct = {}
        for name in self.locals:
            bits, uses = 0, []
            for root, attr, _ in self.locals[name].references():
                bits |= _ROOT_BITS.get(root, 0)
                if root == "local":
                    uses.extend([attr] if attr is not None else list(self.locals))
            direct[name] = (bits, uses)
        bits_of = {}
        for start in direct:  # depth-first without recursion (a chain of locals may be long); no cycles here
            stack = [start]
            while stack:
                name = stack[-1]
                if name in bits_of:
                    stack.pop()
                    continue
                bits, uses = direct[name]
                todo = [u for u in uses if u in direct and u not in bits_of and u not in stack]
                if todo:
                    stack.extend(todo)
                    continue
                for u in uses:
                    bits |= bits_of.get(u, 0)
                bits_of[name] = bits
                stack.pop()
        out = []
        for t in self.targets:
            bits = 0
            for e in list(t.attrs.values()) + list((t.disk or {}).values()):
                for root, attr, _ in e.references():
                    bits |= _ROOT_BITS.get(root, 0)
                    if root == "local":
                        for u in ([attr] if attr is not None else list(self.locals)):
                            bits |= bits_of.get(u, 0)
            out.append(bits)
        return out

    def _check_arch(self, arch, sc, out, skip=None):
        settings = self.settings(arch, scope=sc)
        seen = {}
        names = []
        for i in range(len(self.targets)):
            t = self.targets[i]
            a = t.fixed_arch
            if a is None:  # an arch that needs evaluating (most targets have a literal one, or none)
                a = self._in_target(t, t.arch_filter, sc)
            if a and a not in ARCHES:
                raise PlanError("arch %s is not one of %s" % (quote(a), ", ".join(ARCHES)), file=self.file,
                                line=t.attrs["arch"].line, target=t.name)
            if a and a != arch:
                continue
            if t.name in seen:
                raise PlanError("defined twice for arch %s (also on line %s): the second is never chosen"
                                % (arch, seen[t.name]), file=self.file, line=t.line, target=t.name)
            seen[t.name] = t.line
            names.append(t.name)
            if skip is not None:
                flags, done, ai, li = skip
                key = (i, ai if flags[i] & 1 else -1, li if flags[i] & 2 else -1)
                if key in done:
                    continue  # resolved already in a case its values cannot tell apart from this one
                done.add(key)
            self.resolve(t, arch, scope=sc)  # which checks its references
        default = settings["default_target"]
        if default and not [t for t in self.targets if t.name == default]:
            raise PlanError("default_target %s names no target (targets: %s)" % (quote(default), some(self.names())),
                            file=self.file, line=self.default_target.line)
        if names:
            out[arch] = names

    def _check_refs(self, e, allow_self, target):
        tname = target.name if target is not None else None
        for root, attr, line in e.references():
            msg = None
            if root == "()":
                from bootplan.expr import FUNCTIONS

                if attr not in FUNCTIONS:
                    msg = "unknown function %s() (available: %s)" % (attr, ", ".join(sorted(FUNCTIONS)))
            elif root == "local":
                if attr is not None and attr not in self.locals:
                    msg = "no local %s (locals: %s)" % (quote(attr), some(sorted(self.locals)))
            elif root == "lldp":
                if attr is not None and attr not in LLDP_KEYS and attr != "available":
                    msg = "lldp has no attribute %s (it has: available, %s)" % (quote(attr), ", ".join(LLDP_KEYS))
            elif root == "self":
                if not allow_self:
                    where = "in arch or version" if target is not None else "outside a target"
                    msg = "self is not available %s" % where
                elif attr is not None and attr not in SELF_KEYS:
                    msg = "self has no attribute %s (only name, arch and version)" % quote(attr)
            elif root == "arch":
                if attr is not None:
                    msg = "arch is a string, it has no attribute %s" % quote(attr)
            else:
                msg = "unknown variable %s (plans know arch, lldp.*, local.* and self.*)" % quote(root)
            if msg:
                raise PlanError(msg, file=self.file, line=line, target=tname)

    def _check_cycles(self):
        deps = {}
        for name in self.locals:
            deps[name] = []
            for root, attr, _ in self.locals[name].references():
                if root == "local":
                    deps[name].extend([attr] if attr is not None else list(self.locals))
        state = {}  # name -> 1 visiting, 2 done

        def visit(name, path):
            state[name] = 1
            for d in deps.get(name, []):
                if state.get(d) == 1:
                    cycle = path[path.index(d):] + [d]
                    raise PlanError("locals form a cycle: %s" % " -> ".join(["local." + n for n in cycle]),
                                    file=self.file, line=self.locals[d].line)
                if state.get(d) is None and d in deps:
                    visit(d, path + [d])
            state[name] = 2

        for name in sorted(deps):
            if state.get(name) is None:
                visit(name, [name])


def _only_target(attrs, name, file):
    for a in attrs:
        if a not in TARGET_ATTRS:
            raise PlanError("unknown attribute %s (allowed: %s, and a disk block)"
                            % (quote(a), ", ".join(TARGET_ATTRS)), file=file, line=attrs[a].line, target=name)


# ---- module-level API -------------------------------------------------------------------------------------

def load(text, filename="plan.hcl"):
    """HCL text -> parsed form (dict), after compiling it (syntax, schema; CPython only: python-hcl2).
    Use check(parsed) for the full static check."""
    from bootplan import hcl

    parsed = hcl.parse(text, filename)
    Plan(parsed)
    return parsed


def compile_plan(parsed, file=None):
    """Parsed form -> Plan (schema and expression syntax checked)."""
    return Plan(parsed, file)


def check(parsed, file=None, limits=None):
    """Full static check of a parsed plan; returns {arch: [target names]}."""
    return Plan(parsed, file, limits).check()


def limits_from(cmd):
    """The Limits a boot evaluates plans within: the defaults, or `cloudboot.plan.limits=name=N,...` (a malformed
    value was reported by bootplan.cmdline.check and is not in `cmd`)."""
    from bootplan.expr import Limits

    return Limits.parse(cmd.get("cloudboot.plan.limits", ""))


def render(parsed, arch, target="", lldp=None, menu=None, ask=None, limits=None):
    """Select (REFERENCE §2.3) and resolve the target a machine of `arch` would boot; returns its dict."""
    plan = parsed if isinstance(parsed, Plan) else Plan(parsed, limits=limits)
    t = plan.select(arch, target=target, menu=menu, lldp=lldp, ask=ask)
    return plan.resolve(t, arch, lldp)


def follow(parsed, arch, fetch, target="", lldp=None, menu=None, ask=None, limits=None):
    """render(), then through subplans: while the chosen target is a `subplan`, `fetch(ref)` gives the inner
    plan's parsed form (or a Plan), which is selected afresh (cloudboot.target does not carry over, the menu
    settings do), at most MAX_SUBPLAN_DEPTH plans deep, never the same ref twice, each plan within `limits`
    (bootplan.expr.Limits; the defaults when None). Returns the final target dict with `via`: the subplan refs
    followed, outermost first. An inner plan that names no `exit` keeps the one the outer target had."""
    via = []
    t = render(parsed, arch, target=target, lldp=lldp, menu=menu, ask=ask, limits=limits)
    while t["source"] == "subplan":
        outer_exit = t["exit"]
        ref = t["subplan"]
        if ref in via:
            raise PlanError("subplan loop: %s" % " -> ".join(via + [ref]), target=t["name"])
        via.append(ref)
        if len(via) > MAX_SUBPLAN_DEPTH:
            raise PlanError("subplans nested deeper than %d: %s" % (MAX_SUBPLAN_DEPTH, " -> ".join(via)))
        inner = fetch(ref)
        try:
            t = render(inner, arch, lldp=lldp, menu=menu, ask=ask, limits=limits)
        except PlanError as e:
            if e.file is None or e.file == "plan.hcl":
                e.file = ref
            raise
        t["exit"] = t["exit"] or outer_exit
    t["via"] = via
    return t
