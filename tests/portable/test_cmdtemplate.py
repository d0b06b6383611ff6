"""The original's command-line templates, the subset its plans use (bootplan.cmdtemplate), on CPython and
MicroPython; everything else is refused by name."""

from bootplan import cmdtemplate

VALUES = {"IP": "10.0.2.15", "DNS": "", "DNSAll": ["10.0.2.3", "1.1.1.1"], "Iface": "eth0", "Empty": []}


def _refused(text, fragment):
    try:
        cmdtemplate.render(text, VALUES)
    except cmdtemplate.TemplateError as exc:
        assert fragment in str(exc), str(exc)
        return
    raise AssertionError("%r was rendered" % text)


def test_fields_and_go_list_format():
    assert cmdtemplate.render("ip={{.IP}} dns={{ .DNSAll }} none={{.Empty}}", VALUES) == \
        "ip=10.0.2.15 dns=[10.0.2.3 1.1.1.1] none=[]"
    assert cmdtemplate.render("no template {x}", VALUES) == "no template {x}"


def test_conditionals():
    r = cmdtemplate.render
    assert r("{{if .IP}}ip={{.IP}}{{else}}ip=dhcp{{end}}", VALUES) == "ip=10.0.2.15"
    assert r("{{if .DNS}}d{{else if .Empty}}e{{else if .Iface}}i{{else}}x{{end}}", VALUES) == "i"
    assert r("{{if .DNS}}{{if .IP}}a{{end}}b{{else}}c{{if .IP}}d{{else}}e{{end}}{{end}}", VALUES) == "cd"
    assert r("a {{- if .IP -}} b {{- end}}", VALUES) == "ab"


def test_refusals_name_the_action():
    _refused("{{.Nope}}", "unknown field .Nope (known: DNS, DNSAll, Empty, IP, Iface)")
    _refused("{{range .DNSAll}}{{.}}{{end}}", "{{range .DNSAll}} is not supported")
    _refused("{{.IP | printf}}", "{{.IP | printf}} is not supported")
    _refused("{{if .IP}}x", "{{if}} without {{end}}")
    _refused("{{end}}", "{{end}} without {{if}}")
    _refused("{{else}}", "{{else}} without {{if}}")
    _refused("ip={{.IP", "unterminated {{ at offset 3")
    _refused("{{}}", "{{}} is not supported")
    _refused("{{if}}x{{end}}", "{{if}} is not supported")
