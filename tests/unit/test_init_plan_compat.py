"""Plan mode as the original behaves: cloudboot.menu.timeout= / cloudboot.menu.prompt= on the kernel command
line win over the plan's menu block (REFERENCE §1.1; 0 waits forever). Driven through planmode.choose with
the console menu reading a pipe as stdin; only the registry fetch of the plan is replaced by its parsed text."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bootplan import hcl
from cloudboot.init import menu, planmode
from cloudboot.init.errors import InitError

PLAN = """
default_target = "one"
menu {
  timeout = "%s"
  prompt  = "plan prompt"
}
target "one" {
  kernel = "127.0.0.1:5000/boot/one:1"
}
target "two" {
  kernel = "127.0.0.1:5000/boot/two:1"
}
"""


class _Session:
    arch = "amd64"


def _choose(monkeypatch: pytest.MonkeyPatch, cmd: dict[str, str], plan_timeout: str, typed_after: float) -> str:
    """The chosen target's name; "2" + Enter arrive on stdin `typed_after` seconds into the menu."""
    monkeypatch.setattr(planmode, "fetch_plan", lambda session, ref: hcl.parse(PLAN % plan_timeout, "plan.hcl"))
    r, w = os.pipe()
    monkeypatch.setattr(menu, "console_is_vt", lambda: True)  # the serial console alone, read from the pipe
    monkeypatch.setattr(menu, "Console", functools.partial(menu.Console, in_fd=r))

    def type_two() -> None:
        time.sleep(typed_after)
        os.write(w, b"2\n")

    typist = threading.Thread(target=type_two, daemon=True)
    typist.start()
    try:
        return planmode.choose(dict(cmd, **{"cloudboot.plan": "127.0.0.1:5000/boot/plan:1"}), _Session(), {})["name"]
    finally:
        typist.join()
        os.close(w)
        os.close(r)


def test_cmdline_timeout_zero_waits_forever_and_prompt_wins(monkeypatch, capsys) -> None:
    name = _choose(monkeypatch, {"cloudboot.menu.timeout": "0", "cloudboot.menu.prompt": "cmdline prompt"},
                   "1s", typed_after=2.5)
    out = capsys.readouterr().out
    assert name == "two", out  # the plan's 1 s would have booted "one" before the key
    assert "cmdline prompt" in out and "plan prompt" not in out and "choice [one]: " in out


def test_cmdline_timeout_replaces_a_plan_that_waits(monkeypatch, capsys) -> None:
    name = _choose(monkeypatch, {"cloudboot.menu.timeout": "1s"}, "0", typed_after=4)
    assert name == "one"  # the plan's 0 would have waited for the "2" typed after 4 s
    out = capsys.readouterr().out
    assert "timeout: booting 'one'" in out and "plan prompt" in out


def test_apkovl_modloop_and_templates_through_materialize(registry, tmp_path: Path) -> None:
    """An Alpine-style artifact (kernel, initrd, modloop, apkovl) from a real registry: the apkovl is appended
    to the initrd as a gzip newc cpio holding apkovl.tar.gz (cpio lists it), apkovl=/apkovl.tar.gz and
    modloop= are added, {{.ModloopURL}}, {{.DNSAll}} and {{if}}/{{else}} render as Go's templates do."""
    from cloudboot.init.net import Lease
    from cloudboot.registry.push import push_artifact
    from oci.client import Client
    from oci.ref import parse
    from oci.transport_cpython import Transport

    files = {"kernel": b"MZ kernel", "initrd": gzip.compress(b"initrd cpio"), "modloop": b"squashfs",
             "apkovl": b"tar.gz bytes of the overlay"}
    paths = {}
    for role, data in files.items():
        paths[role] = tmp_path / role
        paths[role].write_bytes(data)
    text = f"{registry.host}/alpine/netboot:3.21"
    push_artifact(Client(Transport()), parse(text, plain_http=True), "linux/amd64", paths)
    cmd = {"cloudboot.insecure": "1"}
    session = planmode.Session(cmd, "amd64")
    lease = Lease("eth0", "10.0.2.15", 24, "10.0.2.2", ["10.0.2.3", "1.1.1.1"])
    target = {"name": "alpine", "index": text, "cmdline_line": 7,
              "cmdline": "dns={{.DNSAll}} ml={{.ModloopURL}} {{if .IP}}ip={{.IP}}{{else}}ip=dhcp{{end}}"}
    work = tmp_path / "run"
    work.mkdir()
    got = planmode.materialize(target, session, str(work), lease)
    blob = f"http://{registry.host}/v2/alpine/netboot/blobs/sha256:{hashlib.sha256(b'squashfs').hexdigest()}"
    assert got.cmdline == (f"dns=[10.0.2.3 1.1.1.1] ml={blob} ip=10.0.2.15 modloop={blob} "
                           "apkovl=/apkovl.tar.gz"), got.cmdline
    joined = Path(got.initrd).read_bytes()
    assert joined.startswith(files["initrd"])
    overlay = joined[len(files["initrd"]):]
    listing = subprocess.run(["cpio", "-it"], input=gzip.decompress(overlay), capture_output=True, check=True)
    assert listing.stdout.decode().split() == ["apkovl.tar.gz"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=gzip.decompress(overlay), cwd=out, check=True)
    assert (out / "apkovl.tar.gz").read_bytes() == files["apkovl"]
    target["cmdline"] = "ip={{.IP | printf}}"
    with pytest.raises(InitError, match=r"target 'alpine' cmdline \(plan line 7\): template: .*not supported"):
        planmode.materialize(target, session, str(work), lease)
    session.transport.close()


@pytest.mark.parametrize(("text", "want"), [
    ("{{if .IP}}a{{else if .DNS}}b{{else}}c{{end}}", "c"),
    ("{{if .Iface}}{{if .IP}}x{{end}}y{{end}}z", "z"),
    ("a {{- .Iface -}} b", "ab"),
    ("{{.DNSAll}}", "[]"),
])
def test_template_subset(text: str, want: str) -> None:
    assert planmode.render_cmdline(text, None, None) == want


@pytest.mark.parametrize("text", ["{{.Nope}}", "{{range .DNSAll}}x{{end}}", "{{if .IP}}x", "{{end}}",
                                  "{{else}}", "x {{ .IP", "{{printf \"%s\" .IP}}", "{{}}"])
def test_template_refusals(text: str) -> None:
    with pytest.raises(InitError, match="the command line: template: "):
        planmode.render_cmdline(text, None, None)
