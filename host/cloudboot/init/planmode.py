"""Plan mode (`cloudboot.plan=` / `cloudboot.image=`): metadata overrides, the plan from the registry, the
target chosen and resolved (bootplan), then either its OCI artifacts pulled into /run/cloud-boot or its
disk{} handed to disk mode (REFERENCE.md §2, §3.3, §5.1). With `cloudboot.disk=` set (on the command line or by
the metadata) disk mode runs right after the metadata overrides: that is how a LUKS passphrase kept in the
metadata reaches the unlock (the original re-read /proc/cmdline and lost it, REFERENCE §4.6).

Where the plan comes from (`plan_source`, logged as `plan: <ref> from <source>`), first match wins:
  1. `cloudboot.plan=`/`cloudboot.image=` on the kernel command line that did not come from the
     CloudBootCmdline variable: the UKI's .cmdline, i.e. a plan baked into the medium (`cloud-boot build
     --plan`), which the network never overrides;
  2. the DHCP boot file name (option 67, or the header's `file` field) when it is an OCI reference;
  3. `cloudboot.plan=`/`cloudboot.image=` in the CloudBootCmdline variable (read from efivarfs too);
  4. the `plan`/`image` the metadata URL (`cloudboot.metadata.url=`) names.
The metadata URL's other keys override the command line as before (the original's "metadata wins");
`cloudboot.cmdline` always replaces the target's command line. Every blob is verified (sha256, size)
before it is used; downloads print progress lines."""

from __future__ import annotations

import os
import time

from cloudboot.init.errors import InitError
from cloudboot.init.log import log, phase
from cloudboot.init.target import Target
from compat import json
from oci.pull import target_layers

DOWNLOADED = ("kernel", "initrd", "modules", "apkovl", "cmdline")
COSIGN_KEY = "/etc/cosign.pub"
#: Seconds per connect/read, each service its own (REFERENCE §1.1/§4.6: the original's 60 s registry client,
#: 10 s metadata GET, 15 s Keystone exchange); metadata and Keystone also stop retrying once that much time
#: has gone, so a dead metadata service costs the boot about 10 s.
REGISTRY_TIMEOUT = 60.0
METADATA_TIMEOUT = 10.0
KEYSTONE_TIMEOUT = 15.0
RESOLV_CONF = "/etc/resolv.conf"

#: The keys that name a plan (the legacy image key makes a one-target plan of an artifact index).
SOURCE_KEYS = ("cloudboot.plan", "cloudboot.image")
NOTHING_TO_BOOT = ("nothing to boot: no plan reference on the kernel command line (cloudboot.plan=<ref> or "
                   "cloudboot.image=<ref>), in the DHCP boot file name, in the CloudBootCmdline variable or from "
                   "a metadata URL (cloudboot.metadata.url=), and no cloudboot.disk=")


def plan_source(cmd: dict[str, str], variable: dict[str, str] | None, bootfile: str,
                metadata: dict[str, str]) -> tuple[str, str, str] | None:
    """(key, reference, where it came from) for the plan to boot, in the module doc's order; None when no
    source names one. `cmd` is the kernel command line (CloudBootCmdline's keys filled in where it lacked
    them), `variable` CloudBootCmdline's keys (None when unset), `bootfile` the DHCP boot file name, `metadata`
    the metadata URL's overrides."""
    var = variable or {}
    for key in SOURCE_KEYS:
        if cmd.get(key) and var.get(key) != cmd[key]:
            return key, cmd[key], "the kernel command line (baked into the medium)"
    if bootfile:
        from oci.errors import BadReference
        from oci.ref import bootfile_reference

        try:
            return "cloudboot.plan", bootfile_reference(bootfile), "the DHCP boot file name"
        except BadReference as exc:
            log(f"dhcp: boot file name {bootfile!r} ignored: not an OCI reference ({exc})")
    for key in SOURCE_KEYS:
        if var.get(key):
            return key, var[key], "the CloudBootCmdline variable"
    for key in SOURCE_KEYS:
        if metadata.get(key):
            return key, metadata[key], f"the metadata URL {cmd.get('cloudboot.metadata.url', '')}"
    return None


class Session:
    """The registry side of one boot: transport, client, cosign policy, progress output."""

    def __init__(self, cmd: dict[str, str], arch: str, resolver=None) -> None:
        from oci.client import Client
        from oci.hash_cpython import BackgroundSha256
        from oci.mirrors import Endpoints, parse_mirror_list
        from oci.srv import Resolver
        from oci.transport_cpython import Transport

        self.cmd, self.arch = cmd, arch
        self.plain_http = cmd.get("cloudboot.insecure") == "1"
        self.transport = Transport(timeout=REGISTRY_TIMEOUT)
        user, password = cmd.get("rd.cloudboot.user") or os.environ.get("REGISTRY_USERNAME"), \
            cmd.get("rd.cloudboot.pass") or os.environ.get("REGISTRY_PASSWORD")
        creds = (user, password or "") if user else None
        self.endpoints = Endpoints(parse_mirror_list(cmd.get("cloudboot.registry.mirror", "")),
                                   resolver or Resolver.from_resolv_conf(RESOLV_CONF), log=log)
        self.client = Client(self.transport, credentials=creds, retries=3, backoff=0.5, backoff_max=4.0,
                             log=_oci_log, endpoints=self.endpoints, sha256=BackgroundSha256)
        self.policy, self.verifier = "off", None
        if os.path.exists(COSIGN_KEY):
            self.policy = cmd.get("cloudboot.cosign", "enforce")
            try:
                from cloudboot.init.signature import Verifier

                with open(COSIGN_KEY, "rb") as f:
                    self.verifier = Verifier(f.read())
            except (ImportError, RuntimeError) as exc:  # RuntimeError: cryptography's OpenSSL set-up
                if self.policy == "enforce":
                    raise InitError(f"cosign: {COSIGN_KEY} is present but this initramfs cannot check "
                                    f"signatures ({exc})") from None
            except ValueError as exc:
                raise InitError(f"cosign: {COSIGN_KEY}: not a usable public key: {exc}") from None

    def ref(self, text: str):
        from oci.ref import parse

        try:
            return parse(text, plain_http=True if self.plain_http else None)
        except ValueError as exc:
            raise InitError(f"bad reference {text!r}: {exc}") from None

    def manifest(self, text: str) -> tuple[dict, object]:
        """The platform manifest `text` names (through an index), signature checked under the policy."""
        from oci.pull import resolve_verified

        ref = self.ref(text)
        manifest, pinned, _, verified = resolve_verified(self.client, ref, "linux", self.arch, self.verifier,
                                                         self.policy, log=lambda m: log(f"cosign: {m}"))
        if verified:
            log(f"cosign: {text}: signature verified")
        return manifest, pinned

    def pull(self, ref, layer: dict, path: str, label: str) -> str:
        """Download a layer to `path` (verified, then renamed into place) with progress lines."""
        size = layer.get("size")
        log(f"  {label}: pulling {size if size is not None else '?'} bytes -> {path}")
        start = time.monotonic()
        sink_path = self.client.fetch_blob_to_path(ref, layer["digest"], path, size=size,
                                                   max_size=None if size is not None else 4 << 30)
        took = max(time.monotonic() - start, 1e-6)
        got = os.path.getsize(sink_path)
        log(f"  pulled {got} in {took:.2f}s ({got / took / 1e6:.1f} MB/s)")
        return sink_path


def _oci_log(message: str) -> None:
    # the mirror switch lines are the client's own ("registry: ..."); retries and resumes get a prefix
    log(message if message.startswith("registry: ") else f"oci: {message}")


def metadata_source(cmd: dict[str, str]):
    """The metadata URL's source (None without `cloudboot.metadata.url`), with its own timeouts: 10 s for the
    metadata GET, 15 s for the Keystone exchange, each also the budget for its retries."""
    import cloudmeta
    from oci.transport_cpython import Transport

    if not cmd.get("cloudboot.metadata.url"):
        return None
    return cloudmeta.from_cmdline(Transport(timeout=METADATA_TIMEOUT), cmd, log=lambda m: log(f"metadata: {m}"),
                                  keystone_transport=Transport(timeout=KEYSTONE_TIMEOUT),
                                  budget=METADATA_TIMEOUT, keystone_budget=KEYSTONE_TIMEOUT)


def _oci_errors():
    from oci.errors import OciError

    return OciError


def fetch_plan(session: Session, text: str) -> dict:
    """The parsed plan at `text`: our JSON layer when present, else the HCL layer (parsed here on CPython)."""
    import oci
    from bootplan import PlanError

    manifest, pinned = session.manifest(text)
    layers = manifest.get("layers", [])
    by_type = {lz.get("mediaType"): lz for lz in reversed(layers)}
    if oci.MT_PLAN_JSON in by_type:
        raw = session.client.fetch_blob_bytes(pinned, by_type[oci.MT_PLAN_JSON]["digest"], max_size=4 << 20)
        try:
            return json.loads(raw)
        except ValueError:
            raise InitError(f"plan {text}: the parsed-plan layer is not JSON") from None
    if oci.MT_PLAN not in by_type:
        raise InitError(f"plan {text}: no layer of type {oci.MT_PLAN} (layers: "
                        f"{', '.join(lz.get('mediaType', '?') for lz in layers) or 'none'})")
    raw = session.client.fetch_blob_bytes(pinned, by_type[oci.MT_PLAN]["digest"], max_size=4 << 20)
    try:
        from bootplan import hcl
        return hcl.parse(raw.decode("utf-8"), "plan.hcl")
    except ImportError:
        raise InitError(f"plan {text}: only an HCL layer and no HCL parser in this initramfs; push plans with "
                        "`cloud-boot push plan` (it adds the parsed form)") from None
    except (UnicodeDecodeError, PlanError) as exc:
        raise InitError(f"plan {text}: {exc}") from None


def legacy_plan(ref: str) -> dict:
    """`cloudboot.image=<ref>`: a plan (parsed form) with one target `legacy-image` whose index is the ref."""
    return {"format": "cloud-boot.plan.v1", "file": "cloudboot.image",
            "attrs": {"default_target": {"line": 1, "expr": '"legacy-image"'}},
            "blocks": [{"type": "target", "labels": ["legacy-image"], "line": 1, "blocks": [],
                        "attrs": {"index": {"line": 1, "expr": json.dumps(ref.replace("${", "$${"))}}}]}


def render_cmdline(text: str, lease, primary_ref, modloop_url: str = "", where: str = "the command line") -> str:
    """The original's post-plan templating (bootplan.cmdtemplate): `{{.IPSpec}}`, `{{.IP}}`, `{{.ModloopURL}}`,
    `{{if .IP}}...{{end}}` ... from the network and the primary registry (a known field without a value is
    empty, as Go's missingkey=zero); a template it cannot render is an InitError naming `where`."""
    from bootplan import cmdtemplate

    if "{{" not in text:
        return text
    net = {} if lease is None else dict(address=lease.address, netmask=lease.netmask, gateway=lease.gateway,
                                        iface=lease.iface, dns=lease.dns)
    values = cmdtemplate.values(ref=primary_ref, modloop_url=modloop_url, **net)
    try:
        return cmdtemplate.render(text, values)
    except cmdtemplate.TemplateError as exc:
        raise InitError(f"{where}: template: {exc}") from None


def apkovl_cpio(src: str, dest: str) -> str:
    """The apkovl wrapped as the original does (REFERENCE §2.5): a gzip newc cpio holding `apkovl.tar.gz`."""
    import gzip

    with open(src, "rb") as f:
        data = f.read()

    def entry(ino: int, mode: int, name: bytes, body: bytes) -> bytes:
        head = b"070701" + b"".join(b"%08X" % v for v in (ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0,
                                                        len(name) + 1, 0))
        return head + name + b"\0" * (1 + -(110 + len(name) + 1) % 4) + body + b"\0" * (-len(body) % 4)

    with open(dest, "wb") as out:
        out.write(gzip.compress(entry(1, 0o100644, b"apkovl.tar.gz", data) + entry(0, 0, b"TRAILER!!!", b""),
                                mtime=0))
    return dest


def menu_settings(cmd: dict[str, str], settings: dict) -> dict:
    """The plan's menu settings with cloudboot.menu.timeout= and cloudboot.menu.prompt= from the command line
    winning (REFERENCE §1.1; `0` waits forever), as the firmware's menu takes its timeout."""
    from cloudboot.init.cmdline import duration

    menu = dict(settings.get("menu") or {})
    if "cloudboot.menu.timeout" in cmd:
        menu["timeout"] = duration(cmd["cloudboot.menu.timeout"])  # checked up front: a valid duration
    if cmd.get("cloudboot.menu.prompt"):
        menu["prompt"] = cmd["cloudboot.menu.prompt"]
    return dict(settings, menu=menu)


def choose(cmd: dict[str, str], session: Session, lldp: dict[str, str]) -> dict:
    """The resolved target dict (through subplans) the command line and the plan select."""
    from bootplan import PlanError, plan
    from cloudboot.init import menu

    ref = cmd.get("cloudboot.plan", "")
    parsed = fetch_plan(session, ref) if ref else legacy_plan(cmd["cloudboot.image"])
    try:
        t = plan.follow(parsed, session.arch, lambda inner: fetch_plan(session, inner),
                        target=cmd.get("cloudboot.target", ""), lldp=lldp, menu=cmd.get("cloudboot.menu"),
                        ask=lambda entries, default, s: menu.ask(entries, default, menu_settings(cmd, s)),
                        limits=plan.limits_from(cmd))
        settings = plan.Plan(parsed).settings(session.arch, lldp)
    except PlanError as exc:
        raise InitError(f"plan {ref or cmd.get('cloudboot.image')}: {exc}") from None
    if settings["dns"] and not cmd.get("cloudboot.dns"):
        from cloudboot.init.net import write_resolv_conf

        log(f"plan: dns {' '.join(write_resolv_conf(settings['dns']))}")
    if settings["mirrors"]:
        session.endpoints.add_mirrors(settings["mirrors"])
        log(f"plan: registry mirrors {' '.join(h for _, h in settings['mirrors'])}")
    return t


def materialize(t: dict, session: Session, workdir: str, lease=None) -> Target:
    """Pull the target's index, kernel, initrd and modules artifacts (each ref once); a later artifact's layer
    wins over an earlier one of the same role (only the winner is pulled); the initrd is the concatenation of
    initrd + modules (+ apkovl)."""
    chosen: dict[str, tuple[str, object, dict]] = {}
    modloop_url = ""
    for field, pinned, layer, role in target_layers(t, session.manifest):
        if role == "modloop":
            modloop_url = f"{session.client.base_url(pinned)}/blobs/{layer['digest']}"
        if role in DOWNLOADED:
            chosen[role] = (field, pinned, layer)
    if "kernel" not in chosen:
        raise InitError("no kernel layer found in any referenced artifact")
    files = {role: session.pull(pinned, layer, os.path.join(workdir, f"{field}-{role}"), role)
             for role, (field, pinned, layer) in chosen.items()}
    if "apkovl" in files:
        files["apkovl"] = apkovl_cpio(files["apkovl"], os.path.join(workdir, "apkovl.cpio.gz"))
    pieces = [files[r] for r in ("initrd", "modules", "apkovl") if r in files]
    initrd = pieces[0] if len(pieces) == 1 else None
    if len(pieces) > 1:
        initrd = os.path.join(workdir, "initrd.joined")
        with open(initrd, "wb") as out:
            for p in pieces:
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        out.write(chunk)
    cmdline = t.get("cmdline") or ""
    where = f"target {t['name']!r} cmdline (plan line {t.get('cmdline_line')})"
    if not cmdline and "cmdline" in files:
        with open(files["cmdline"], encoding="utf-8", errors="replace") as f:
            cmdline = f.read().strip()
        where = f"target {t['name']!r}: the artifact's cmdline layer"
    primary = next((t[f] for f in ("index", "kernel", "initrd", "modules") if t.get(f)), "")
    cmdline = render_cmdline(cmdline, lease, session.client.endpoint_ref(session.ref(primary)) if primary else None,
                             modloop_url, where)
    if modloop_url and "modloop=" not in cmdline:
        cmdline = f"{cmdline} modloop={modloop_url}".strip()
    if "apkovl" in files and "apkovl=" not in cmdline:
        cmdline = f"{cmdline} apkovl=/apkovl.tar.gz".strip()
    if "cloudboot.cmdline" in session.cmd:
        cmdline = session.cmd["cloudboot.cmdline"]
    return Target(files["kernel"], initrd, cmdline, f"target {t['name']!r}", t["name"], t.get("exit", ""))


def settle_source(cmd: dict[str, str], variable: dict[str, str] | None, bootfile: str,
                  metadata: dict[str, str]) -> None:
    """Put the winning plan reference (plan_source) into `cmd` as its only plan key, and the metadata URL's
    other overrides over the command line; log where the plan came from. InitError when nothing names one."""
    import cloudmeta

    chosen = plan_source(cmd, variable, bootfile, metadata)
    if chosen is None:
        raise InitError(NOTHING_TO_BOOT)
    key, ref, where = chosen
    log(f"plan: {key.removeprefix('cloudboot.')} {ref} from {where}")
    for other in SOURCE_KEYS:
        if metadata.get(other) and metadata[other] != ref:
            log(f"metadata: {other}={metadata[other]} not used: the plan comes from {where}")
    cmd.update(cloudmeta.merge(cmd, {k: v for k, v in metadata.items() if k not in SOURCE_KEYS}, log))
    for other in SOURCE_KEYS:
        cmd.pop(other, None)
    cmd[key] = ref


def run(cmd: dict[str, str], workdir: str, lldp_listener=None, lease=None,
        variable: dict[str, str] | None = None, bootfile: str | None = None, resolver=None) -> Target:
    """Plan mode end to end (the network is up): overrides, plan source, plan, target, artifacts or disk.
    `lease`: the default route's (for the command line's templates); `variable`: the CloudBootCmdline
    variable's keys (None when unset); `bootfile`: the DHCP boot file name (default: the lease's); `resolver`
    answers DNS SRV queries (default: the name servers of /etc/resolv.conf)."""
    import cloudmeta
    from bootplan.plan import canonical_arch

    arch = canonical_arch(os.uname().machine)
    OciError = _oci_errors()
    session = Session(cmd, arch, resolver)
    try:
        overrides: dict[str, str] = {}
        source = metadata_source(cmd)
        if source is not None:
            overrides = source.fetch_or_fallback()
            source.close()
        if overrides.get("cloudboot.keymap"):
            from cloudboot.init import keymap

            try:
                keymap.check(overrides["cloudboot.keymap"])
            except ValueError as exc:
                raise InitError(f"metadata: cloudboot.keymap: {exc}") from None
            keymap.apply(overrides["cloudboot.keymap"])
        if cmd.get("cloudboot.disk") or overrides.get("cloudboot.disk"):  # disk mode, with the metadata's settings
            from cloudboot.init import disk

            cmd.update(cloudmeta.merge(cmd, overrides, log))  # logs each change, secrets as ***
            log(f"booting from local disk {cmd['cloudboot.disk']} (settings from the metadata URL)")
            with phase("disk"):
                return disk.prepare(cmd, workdir)
        if bootfile is None:
            bootfile = lease.bootfile if lease is not None else ""
        settle_source(cmd, variable, bootfile, overrides)
        if overrides:  # cloudboot.insecure, credentials... may have changed
            session.transport.close()
            session = Session(cmd, arch, resolver)
        lldp = lldp_listener.snapshot() if lldp_listener else {}
        t = choose(cmd, session, lldp)
        log(f'target="{t["name"]}" index={t.get("index", "")} kernel={t.get("kernel", "")} '
            f'initrd={t.get("initrd", "")} modules={t.get("modules", "")} cmdline="{t.get("cmdline", "")}"'
            + (f" via {' -> '.join(t['via'])}" if t.get("via") else ""))
        if t["source"] == "disk":
            from cloudboot.init import disk

            d = t["disk"]
            sub = dict(cmd)
            sub["cloudboot.disk"] = d["device"]
            for key in ("fs", "kernel", "initrd"):
                if d.get(key):
                    sub[f"cloudboot.disk.{key}"] = d[key]
            if t.get("cmdline") and "cloudboot.cmdline" not in cmd:
                sub["cloudboot.cmdline"] = t["cmdline"]
            found = disk.prepare(sub, workdir)
            found.name, found.exit = t["name"], t.get("exit", "")
            return found
        with phase("download"):
            return materialize(t, session, workdir, lease)
    except OciError as exc:
        raise InitError(f"registry: {exc}") from None
    finally:
        session.transport.close()
