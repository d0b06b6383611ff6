"""Plans on the parsed form (bootplan.plan): schema, locals, selection, resolution, located errors.
Plain asserts; runs on CPython (pytest) and the MicroPython unix port (which has no HCL parser: the plans
here are built as dicts, and the example plans come from the generated plan_fixtures)."""

from plan_fixtures import PLANS

from bootplan import PlanError
from bootplan import plan as bplan


def _attrs(attrs, line):
    out = {}
    for name in sorted(attrs):  # MicroPython's dicts do not keep insertion order
        out[name] = {"line": line[0], "expr": attrs[name]}
        line[0] += 1
    return out


def make(top=None, locals_=None, targets=(), menu=None):
    """A parsed plan. targets: (name, {attr: expr}) or (name, {attr: expr}, {disk attr: expr}). Every
    attribute gets its own line, counting from 1 (blocks take a line each; attributes in name order)."""
    line = [1]
    parsed = {"format": bplan.FORMAT, "file": "t.hcl", "attrs": _attrs(top or {}, line), "blocks": []}
    if locals_ is not None:
        block_line = line[0]
        line[0] += 1
        parsed["blocks"].append({"type": "locals", "labels": [], "line": block_line, "attrs": _attrs(locals_, line),
                                 "blocks": []})
    if menu is not None:
        block_line = line[0]
        line[0] += 1
        parsed["blocks"].append({"type": "menu", "labels": [], "line": block_line, "attrs": _attrs(menu, line),
                                 "blocks": []})
    for t in targets:
        block_line = line[0]
        line[0] += 1
        block = {"type": "target", "labels": [t[0]], "line": block_line, "attrs": _attrs(t[1], line), "blocks": []}
        if len(t) > 2:
            disk_line = line[0]
            line[0] += 1
            block["blocks"].append({"type": "disk", "labels": [], "line": disk_line, "attrs": _attrs(t[2], line),
                                    "blocks": []})
        parsed["blocks"].append(block)
    return parsed


def error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except PlanError as exc:
        return exc
    raise AssertionError("no PlanError")


def render(parsed, arch="amd64", **kw):
    return bplan.render(parsed, arch, **kw)


def test_example_plans_check_and_render():
    for name in PLANS:
        bplan.check(PLANS[name])
    t = render(PLANS["production"], "arm64", lldp={"port_id": "Eth1"})
    assert t["name"] == "primary" and t["source"] == "oci"
    assert t["cmdline"] == "console=ttyAMA0 console=tty0 ro hostname=node-Eth1"
    assert t["kernel"] == "192.0.2.10:5000/boot/kernel:6.12"
    t = render(PLANS["production"], "amd64")
    assert t["cmdline"] == "console=ttyS0 console=tty0 ro"
    t = render(PLANS["qemu-smoke"], "amd64")
    assert t["label"] == "Alpine 3.21 netboot (smoke test)"
    assert t["index"] == "10.0.2.2:5000/boot/alpine:3.21"
    assert t["cmdline"].startswith("console=ttyS0 quiet ip={{.IPSpec}} alpine_repo=")
    t = render(PLANS["disk-label"], "riscv64")
    assert t["source"] == "disk" and t["disk"]["device"] == "LABEL=cloudimg-rootfs"
    t = render(PLANS["zfs"], "x86_64")
    assert t["disk"] == {"device": "rpool/ROOT/pve-1", "fs": "zfs", "kernel": "/boot/vmlinuz-pve",
                         "initrd": "/boot/initrd.img-pve"}
    t = render(PLANS["subplan"], "arm64")
    assert t["source"] == "subplan" and t["subplan"] == "192.0.2.10:5000/boot/inner-plan:v1"
    t = render(PLANS["reboot"], "arm64")
    assert t["exit"] == "reboot" and t["cmdline"] == "console=hvc0 console=tty0 ro"  # the plan's exit
    assert render(PLANS["reboot"], "amd64", target="rescue")["exit"] == "kexec"  # the target's own


def test_arch_filter_and_multi_arch_names():
    p = make(top={"default_target": '"boot"'}, targets=[
        ("boot", {"arch": '"amd64"', "kernel": '"r/k-amd64"'}),
        ("boot", {"arch": '"arm64"', "kernel": '"r/k-arm64"'}),
        ("any", {"index": '"r/i"'}),
    ])
    assert render(p, "amd64")["kernel"] == "r/k-amd64"
    assert render(p, "aarch64")["kernel"] == "r/k-arm64"
    exc = error(render, p, "riscv64")
    assert 'no target "boot" for arch riscv64 (it is for amd64, arm64)' in str(exc), str(exc)
    assert exc.line == 1
    assert render(p, "riscv64", target="any")["index"] == "r/i"
    assert bplan.check(p) == {"amd64": ["boot", "any"], "arm64": ["boot", "any"], "riscv64": ["any"],
                              "loong64": ["any"]}


def test_single_target_fallback():
    p = make(targets=[("only", {"arch": '"arm64"', "index": '"r/i"'})])
    assert render(p, "arm64")["name"] == "only"
    assert "the only target is for arch arm64, not amd64" in str(error(render, p, "amd64"))
    # No default_target, several targets, one of them for this arch: that one (the original failed here).
    p = make(targets=[("a", {"arch": '"amd64"', "index": '"r/a"'}), ("b", {"arch": '"arm64"', "index": '"r/b"'})])
    assert render(p, "arm64")["name"] == "b"
    exc = error(render, p, "riscv64")
    assert "no target for arch riscv64" in str(exc)
    p = make(targets=[("a", {"index": '"r/a"'}), ("b", {"index": '"r/b"'})])
    assert "no default_target, and 2 targets for arch amd64 (a, b)" in str(error(render, p))


def test_unknown_target():
    p = make(top={"default_target": '"a"'}, targets=[("a", {"index": '"r/a"'})])
    exc = error(render, p, target="nope")
    assert str(exc) == 't.hcl: no target "nope" (targets: a)', str(exc)
    p = make(top={"default_target": '"ghost"'}, targets=[("a", {"index": '"r/a"'})])
    exc = error(bplan.check, p)
    assert str(exc).startswith('t.hcl:1: default_target "ghost" names no target'), str(exc)


def test_locals_may_use_locals_in_any_order():
    p = make(locals_={"url": '"${local.host}/boot"', "host": '"${local.ip}:5000"', "ip": '"10.0.2.2"',
                      "console": 'arch == "arm64" ? "ttyAMA0" : "ttyS0"'},
             targets=[("t", {"index": '"${local.url}/x"', "cmdline": '"console=${local.console}"'})])
    t = render(p, "arm64")
    assert t["index"] == "10.0.2.2:5000/boot/x"
    assert t["cmdline"] == "console=ttyAMA0"
    bplan.check(p)


def test_local_cycle_is_named():
    p = make(locals_={"a": '"${local.b}"', "b": '"${local.c}-x"', "c": "local.a"},
             targets=[("t", {"index": "local.a"})])
    exc = error(bplan.check, p)
    assert "locals form a cycle: local.a -> local.b -> local.c -> local.a" in str(exc), str(exc)
    assert exc.line == 2
    exc = error(render, p)  # found lazily too, without check
    assert "locals form a cycle: local.a -> local.b -> local.c -> local.a" in str(exc), str(exc)
    p = make(locals_={"me": '"${local.me}"'}, targets=[("t", {"index": '"r/i"'})])
    assert "local.me -> local.me" in str(error(bplan.check, p))


def test_self_and_version():
    p = make(targets=[("alpine", {"version": '"3.21"', "label": '"Alpine v${self.version} (${self.name})"',
                                  "index": '"r/alpine:${self.version}"'})])
    t = render(p)
    assert t["label"] == "Alpine v3.21 (alpine)"
    assert t["index"] == "r/alpine:3.21"
    p = make(targets=[("x", {"index": '"r/x"', "label": '"v${self.version}"'})])
    assert render(p)["label"] == "v"  # missing version is empty, as in the original
    p = make(targets=[("x", {"index": '"r/x:${self.version}"'})])
    # the original's pull failed on it; we stop at the plan's line
    assert "index \"r/x:\" is not an OCI reference: bad tag" in str(error(render, p))
    p = make(targets=[("x", {"index": '"r/x:${self.index}"'})])
    exc = error(bplan.check, p)
    assert 'self has no attribute "index"' in str(exc)
    assert exc.target == "x" and exc.line == 2
    p = make(locals_={"bad": "self.name"}, targets=[("x", {"index": '"r/i"'})])
    assert "self is not available outside a target" in str(error(bplan.check, p))


def test_lldp():
    p = make(targets=[("t", {"index": '"r/i"', "cmdline":
                             'lldp.available ? "hostname=node-${lldp.port_id}" : "hostname=anon"'})])
    assert render(p, lldp={"port_id": "Eth1"})["cmdline"] == "hostname=node-Eth1"
    assert render(p, lldp={})["cmdline"] == "hostname=anon"
    assert render(p, lldp={"system_desc": "only a description"})["cmdline"] == "hostname=anon"
    assert "unknown LLDP key" in str(error(render, p, lldp={"port": "x"}))
    p = make(targets=[("t", {"index": "lldp.portid"})])
    exc = error(bplan.check, p)
    assert 'lldp has no attribute "portid"' in str(exc) and exc.target == "t"


def test_cmdline_forms():
    p = make(targets=[("t", {"index": '"r/i"', "cmdline": '["a", null, "", "b=${1 + 1}", arch == "x" ? "c" : null]'})])
    assert render(p)["cmdline"] == "a b=2"
    p = make(targets=[("t", {"index": '"r/i"', "cmdline": '["a", 2]'})])
    exc = error(render, p)
    assert str(exc) == 't.hcl:2: target "t": cmdline element 2 must be a string, got number', str(exc)
    p = make(targets=[("t", {"index": '"r/i"', "cmdline": "true"})])
    assert "cmdline must be a string or a list of strings, got bool" in str(error(render, p))
    p = make(targets=[("t", {"index": '"r/i"'})])
    assert render(p)["cmdline"] == ""


def test_string_fields_must_be_strings():
    p = make(targets=[("t", {"index": "42"})])
    exc = error(render, p)
    assert str(exc) == 't.hcl:2: target "t": index must be a string, got number', str(exc)
    p = make(targets=[("t", {"index": '"r/i"', "version": "6.1"})])
    assert render(p)["version"] == "6.1"  # a number is a fine version


def test_exactly_one_source():
    p = make(targets=[("t", {"kernel": '"r/k"', "cmdline": '"x"'}, {"device": '"/dev/vda2"'})])
    exc = error(render, p)
    assert str(exc).startswith('t.hcl:1: target "t": two sources (kernel and disk)'), str(exc)
    p = make(targets=[("t", {"index": '"r/i"', "subplan": '"r/s"'})])
    assert "two sources (index and subplan)" in str(error(render, p))
    p = make(targets=[("t", {"label": '"nothing"'})])
    assert "no source: set exactly one of" in str(error(render, p))
    # An empty ref does not count as a source (evaluation decides, as in the original).
    p = make(targets=[("t", {"index": 'arch == "arm64" ? "r/i" : ""', "subplan": 'arch == "arm64" ? "" : "r/s"'})])
    assert render(p, "arm64")["source"] == "oci"
    assert render(p, "amd64")["source"] == "subplan"


def test_disk_rules():
    p = make(targets=[("t", {}, {"device": '"rpool/ROOT/x"', "fs": '"zfs"'})])
    assert "a zfs disk needs kernel and initrd" in str(error(render, p))
    p = make(targets=[("t", {}, {"device": '"/dev/vda1"', "fs": '"ntfs"'})])
    assert 'disk.fs "ntfs" is not one of' in str(error(render, p))
    p = make(targets=[("t", {}, {"fs": '"ext4"'})])
    assert "disk needs device" in str(error(bplan.Plan, p))
    p = make(targets=[("t", {}, {"device": '"UUID=1234"', "luks": '"x"'})])
    assert 'unknown attribute "luks" in disk' in str(error(bplan.Plan, p))
    p = make(targets=[("t", {}, {"device": '"PARTLABEL=root"'})])
    assert render(p)["disk"] == {"device": "PARTLABEL=root", "fs": "", "kernel": "", "initrd": ""}


def test_schema_errors():
    exc = error(bplan.Plan, make(targets=[("t", {"kernal": '"k"'})]))
    assert str(exc).startswith('t.hcl:2: target "t": unknown attribute "kernal"'), str(exc)
    exc = error(bplan.Plan, make(top={"defualt_target": '"x"'}))
    assert 'unknown attribute "defualt_target" in the plan' in str(exc)
    exc = error(bplan.Plan, make(targets=[("t", {"disk": '{device = "x"}'})]))
    assert "disk is a block" in str(exc)
    parsed = make()
    parsed["blocks"].append({"type": "targets", "labels": ["x"], "line": 9, "attrs": {}, "blocks": []})
    assert str(error(bplan.Plan, parsed)).startswith('t.hcl:9: unknown block "targets"')
    parsed = make()
    parsed["blocks"].append({"type": "target", "labels": [], "line": 4, "attrs": {}, "blocks": []})
    assert "a target block needs one name" in str(error(bplan.Plan, parsed))
    assert "second menu block" in str(error(bplan.Plan, _two_menus()))
    exc = error(bplan.Plan, {"format": "something-else"})
    assert "parsed plan format" in str(exc)
    assert "malformed parsed plan" in str(error(bplan.Plan, {"attrs": {"dns": 3}}))


def _two_menus():
    parsed = make(menu={"timeout": '"5s"'})
    parsed["blocks"].append({"type": "menu", "labels": [], "line": 7, "attrs": {}, "blocks": []})
    return parsed


def test_expression_errors_are_located():
    p = make(targets=[("t", {"index": '"r/i"', "cmdline": '"a ${nope} b"'})])
    exc = error(bplan.check, p)
    assert str(exc).startswith('t.hcl:2: target "t": unknown variable "nope"'), str(exc)
    p = make(targets=[("t", {"index": '"r/i"', "label": '"broken ${"'})])
    exc = error(bplan.Plan, p)
    assert exc.line == 3 and exc.file == "t.hcl"
    p = make(locals_={"x": '"${local.y}"'}, targets=[("t", {"index": "local.x"})])
    exc = error(render, p)
    assert 'no local "y"' in str(exc) and exc.line == 2
    assert 'target "t"' not in str(exc)  # the fault is in the locals, not in the target


def test_type_error_only_for_one_arch_names_the_arch():
    p = make(targets=[("t", {"index": '"r/i"', "label": 'arch == "riscv64" ? 1 : "ok"'})])
    exc = error(bplan.check, p)
    assert "label must be a string, got number [when arch = riscv64, no LLDP]" in str(exc), str(exc)


def test_duplicate_target_for_the_same_arch():
    p = make(targets=[("t", {"index": '"r/a"'}), ("t", {"index": '"r/b"'})])
    exc = error(bplan.check, p)
    assert "defined twice for arch amd64 (also on line 1)" in str(exc), str(exc)


def test_check_refuses_what_is_not_an_oci_reference():
    for bad in ("::::@@@", "i", "r/x:", "R/Upper", "r/x@sha256:00"):
        p = make(targets=[("t", {"index": '"' + bad + '"'})])
        exc = error(bplan.check, p)
        assert str(exc).startswith('t.hcl:2: target "t": index "%s" is not an OCI reference' % bad), str(exc)
    p = make(targets=[("t", {"subplan": 'arch == "arm64" ? "r/ok" : "bad ref"'})])
    assert "[when arch = arm64" not in str(error(bplan.check, p))
    assert bplan.check(make(targets=[("t", {"kernel": '"127.0.0.1:5000/boot/k:6.12"'})])) is not None


def test_render_refuses_a_bad_reference_of_the_chosen_target_at_its_line():
    """What boots (the init, the firmware: render) reads references as plan check does: a located plan error
    before any pull. Only the chosen target's: another target's bad reference does not stop a boot."""
    p = make(targets=[("t", {"index": '"r/ok:1"', "initrd": '"bad ref"'}), ("u", {"index": '"::::"'})])
    exc = error(bplan.render, p, "amd64", "t")
    assert str(exc).startswith('t.hcl:3: target "t": initrd "bad ref" is not an OCI reference'), str(exc)
    ok = make(targets=[("t", {"index": '"r/ok:1"'}), ("u", {"index": '"::::"'})])
    assert bplan.render(ok, "amd64", "t")["index"] == "r/ok:1"


def test_unknown_arch_name():
    p = make(targets=[("t", {"arch": '"amd46"', "index": '"r/a"'})])
    assert 'arch "amd46" is not one of amd64, arm64, riscv64, loong64' in str(error(bplan.check, p))


def test_settings_menu_and_dns():
    p = make(top={"dns": '["192.0.2.53", ""]', "default_target": '"a"'}, menu={"timeout": '"1m30s"'},
             targets=[("a", {"index": '"r/a"'})])
    s = bplan.Plan(p).settings("amd64")
    assert s == {"default_target": "a", "dns": ["192.0.2.53"], "mirrors": [],
                 "menu": {"timeout": 90, "prompt": bplan.DEFAULT_PROMPT}, "exit": ""}
    for text, seconds in (('"5s"', 5), ('"12"', 12), ('""', 0), ("7", 7), ('"1.5s"', 1.5), ('"500ms"', 0.5),
                          ('"1h"', 3600), ('"0"', 0)):
        p = make(menu={"timeout": text, "prompt": '"pick"'}, targets=[("a", {"index": '"r/a"'})])
        s = bplan.Plan(p).settings("amd64")
        assert s["menu"] == {"timeout": seconds, "prompt": "pick"}, (text, s)
    p = make(menu={"timeout": '"soon"'}, targets=[("a", {"index": '"r/a"'})])
    exc = error(bplan.check, p)
    assert 'timeout "soon" is not a duration' in str(exc) and exc.line == 2
    p = make(top={"dns": "1"})
    assert "dns must be a list of strings" in str(error(bplan.check, p))


def test_settings_mirrors():
    p = make(top={"mirrors": '["m1.example:5000", "http://10.0.0.5:5000", ""]'}, targets=[("a", {"index": '"r/a"'})])
    assert bplan.Plan(p).settings("amd64")["mirrors"] == [(None, "m1.example:5000"), ("http", "10.0.0.5:5000")]
    p = make(top={"mirrors": '"one.example"'}, targets=[("a", {"index": '"r/a"'})])
    assert bplan.Plan(p).settings("amd64")["mirrors"] == [(None, "one.example")]
    for bad, why in (('["m.example/x"]', "bad registry mirror"), ("[1]", "mirrors must be a list of strings")):
        p = make(top={"mirrors": bad}, targets=[("a", {"index": '"r/a"'})])
        assert why in str(error(bplan.check, p)), bad


def _menu_plan(**top):
    return make(top=top or {"default_target": '"b"'}, menu={"timeout": '"3"'}, targets=[
        ("a", {"label": '"First"', "index": '"r/a"'}), ("b", {"index": '"r/b"'}),
        ("c", {"arch": '"arm64"', "index": '"r/c"'})])


def test_select_with_menu():
    seen = []

    def ask(entries, default, settings):
        seen.append((entries, default, settings["menu"]["timeout"]))
        return "a"

    plan = bplan.Plan(_menu_plan())
    assert plan.select("amd64", ask=ask).name == "a"
    assert seen == [([("a", "First"), ("b", "b")], "b", 3)]
    assert plan.select("amd64", target="b", ask=ask).name == "b"  # cloudboot.target bypasses the menu
    assert plan.select("amd64", menu="0", ask=ask).name == "b"  # cloudboot.menu=0: default
    assert len(seen) == 1

    def broken(entries, default, settings):
        raise OSError("no console")

    assert plan.select("amd64", ask=broken).name == "b"  # menu failure -> default
    assert plan.menu_entries("arm64") == [("a", "First"), ("b", "b"), ("c", "c")]
    # No menu block: only cloudboot.menu=1 asks.
    plain = bplan.Plan(make(top={"default_target": '"b"'}, targets=[("a", {"index": '"r/a"'}),
                                                                      ("b", {"index": '"r/b"'})]))
    assert plain.select("amd64", ask=ask).name == "b"
    assert plain.select("amd64", menu="1", ask=ask).name == "a"
    # A default that the menu does not offer (another arch's target): the first option is the default.
    plan = bplan.Plan(_menu_plan(default_target='"c"'))
    assert plan.select("amd64", ask=lambda entries, default, settings: "").name == "a"


def test_parsed_form_survives_json_round_trip():
    import json

    for name in PLANS:
        again = json.loads(json.dumps(PLANS[name]))
        assert render(again, "amd64", target="", lldp=None) == render(PLANS[name], "amd64")


def test_follow_subplans():
    outer = make(top={"default_target": '"live"'}, targets=[("live", {"subplan": '"reg/inner:v1"'}),
                                                            ("other", {"index": '"r/o"'})])
    inner = make(top={"default_target": '"deb"'}, targets=[("deb", {"index": '"reg/debian:13"'})])
    plans = {"reg/inner:v1": inner}
    t = bplan.follow(outer, "amd64", plans.__getitem__)
    assert t["name"] == "deb" and t["index"] == "reg/debian:13" and t["via"] == ["reg/inner:v1"]
    # cloudboot.target names an outer target only; the inner plan uses its own default.
    assert bplan.follow(outer, "amd64", plans.__getitem__, target="other")["via"] == []
    loop = make(targets=[("again", {"subplan": '"reg/loop"'})])
    exc = error(bplan.follow, loop, "amd64", lambda ref: loop)
    assert "subplan loop: reg/loop -> reg/loop" in str(exc), str(exc)
    chain = {}
    for n in range(12):
        chain["reg/p" + str(n)] = make(targets=[("t", {"subplan": '"reg/p' + str(n + 1) + '"'})])
    exc = error(bplan.follow, chain["reg/p0"], "amd64", chain.__getitem__)
    assert "subplans nested deeper than 8" in str(exc), str(exc)


def test_exit_per_target_and_for_the_plan():
    p = make(top={"exit": '"reboot"'},
             targets=[("a", {"index": '"r/a"'}), ("b", {"index": '"r/b"', "exit": '"kexec"'})])
    assert render(p, target="a")["exit"] == "reboot"  # the plan's
    assert render(p, target="b")["exit"] == "kexec"  # the target's wins
    assert bplan.Plan(p).settings("amd64")["exit"] == "reboot"
    assert render(make(targets=[("a", {"index": '"r/a"'})]))["exit"] == ""  # unset: the init's default
    conditional = make(targets=[("a", {"index": '"r/a"', "exit": 'arch == "arm64" ? "reboot" : "kexec"'})])
    assert render(conditional, "arm64")["exit"] == "reboot" and render(conditional, "amd64")["exit"] == "kexec"
    exc = error(bplan.check, make(targets=[("a", {"index": '"r/a"', "exit": '"poweroff"'})]))
    assert 'exit "poweroff" is not one of kexec, reboot' in str(exc) and exc.line == 2 and exc.target == "a", str(exc)
    exc = error(bplan.check, make(top={"exit": '"halt"'}, targets=[("a", {"index": '"r/a"'})]))
    assert 'exit "halt" is not one of kexec, reboot' in str(exc) and exc.line == 1, str(exc)
    # Through a subplan: the inner plan's own choice, else the outer target's.
    outer = make(targets=[("live", {"subplan": '"reg/inner"', "exit": '"reboot"'})])
    assert bplan.follow(outer, "amd64", lambda ref: make(targets=[("d", {"index": '"r/d"'})]))["exit"] == "reboot"
    inner = make(top={"exit": '"kexec"'}, targets=[("d", {"index": '"r/d"'})])
    assert bplan.follow(outer, "amd64", lambda ref: inner)["exit"] == "kexec"
