"""Path D as a step of the firmware's boot cascade: network up (our virtio-net or the firmware's SNP, lwIP,
DHCP), the plan from a registry, its target's kernel and initrd pulled into pages and verified, then the
disk loader's hand-off (LoadImage from memory, LoadOptions, LoadFile2 initrd).

Where the plan reference comes from, first that exists: the DHCP boot file name (option 67 or the BOOTP
`file` field), `cloudboot.plan=` in the firmware's load options or in the CloudBootCmdline variable.
`cloudboot.insecure=1` means plain HTTP for every registry (as in the Linux init).

Where the step sits (`arrange`, bootplan.netorder): `cloudboot.net=0` leaves it out, `cloudboot.net=1` puts it
first, and so does a configured `cloudboot.plan=` when the boot medium has no cloud-boot UKI for this arch (with
one, its Linux init takes the plan); otherwise it runs last, after the disks (a lease without a boot file name
then just says so). Every reason is printed.
"""

import json
import time

import _uefi

import arches
from bootplan import cmdline as grammar

MAX_PLAN = 4 << 20


class NetbootError(Exception):
    """Path D could not boot; the message is the one line the console shows before the next step."""


def log(msg):
    print("cloud-boot: " + msg)


def options():
    """The checked cloudboot.* options of this boot (the loader's: malformed values count as absent)."""
    from loader import options as loader_options

    return loader_options()


def arrange(steps, uki):
    """The cascade's steps with the network step placed (or left out) by bootplan.netorder, the reason printed.
    `uki`: a callable naming the cloud-boot UKI for this arch on the boot medium, or None."""
    from bootplan import netorder

    where, why = netorder.place(options(), uki)
    if where == "off":
        log("network boot off (%s)" % why)
        return steps
    if where == "first":
        log("network boot first (%s)" % why)
        return [boot_network] + steps
    log("network boot after the disks (%s)" % why)
    return steps + [boot_network]


class PageSink:
    """Blob bytes into pages from AllocatePages (never the GC heap): `write` appends, `free` gives them back."""

    def __init__(self, size):
        from uefi import core

        self.size = size
        self.pages = max(1, (size + 4095) // 4096)
        self.addr = core.allocate_pages(self.pages)
        self.pos = 0

    def write(self, chunk):
        from uefi import mem

        n = len(chunk)
        if self.pos + n > self.size:
            raise NetbootError("blob longer than its descriptor's %d bytes" % self.size)
        mem.view(self.addr + self.pos, n)[:] = chunk
        self.pos += n

    def region(self):
        return self.addr, self.size

    def free(self):
        from uefi import core

        if self.addr:
            core.free_pages(self.addr, self.pages)
            self.addr = 0


class Session:
    """One network boot: transport, registry client, cosign policy, the pages pulled so far."""

    def __init__(self, opts, lease):
        from netstack import http
        from oci.client import Client

        self.opts, self.lease = opts, lease
        self.arch = arches.get(_uefi.ARCH).go
        self.plain = opts.get("cloudboot.insecure") == "1"
        timeout = grammar.duration(opts.get("cloudboot.net.timeout", "20s"))
        self.transport = http.Transport(timeout=timeout, search=lease.domain if lease else "",
                                        tls=_tls_wrapper(opts))
        user = opts.get("rd.cloudboot.user")  # registry credentials, the Linux init's keys
        creds = (user, opts.get("rd.cloudboot.pass", "")) if user else None
        self.client = Client(self.transport, credentials=creds, retries=3, backoff=0.5, backoff_max=4.0,
                             log=lambda m: log("oci: " + m))
        self.policy, self.verifier = _cosign_policy(opts)
        self.sinks = []

    def ref(self, text):
        from oci.ref import parse

        return parse(text, plain_http=True if self.plain else None)

    def manifest(self, text):
        """The platform manifest `text` names (through an index), its signature checked under the policy."""
        from oci.pull import resolve_verified

        manifest, pinned, _, verified = resolve_verified(self.client, self.ref(text), "linux", self.arch,
                                                         self.verifier, self.policy, log=lambda m: log(m))
        if verified:
            log("cosign: %s: signature verified" % text)
        return manifest, pinned

    def plan(self, text):
        """The parsed plan at `text` (its application/vnd.cloud-boot.plan.v1+json layer)."""
        import oci

        manifest, pinned = self.manifest(text)
        layers = manifest.get("layers", [])
        for layer in layers:
            if layer.get("mediaType") == oci.MT_PLAN_JSON:
                raw = self.client.fetch_blob_bytes(pinned, layer["digest"], layer.get("size"), MAX_PLAN)
                try:
                    return json.loads(raw)
                except ValueError:
                    raise NetbootError("plan %s: the parsed-plan layer is not JSON" % text) from None
        raise NetbootError("plan %s: no %s layer (the firmware does not parse HCL: push plans with `cloud-boot "
                           "push plan`, which adds the parsed form)" % (text, oci.MT_PLAN_JSON))

    def pull(self, pinned, layer, role):
        """A layer into pages, verified: (address, size)."""
        size = layer.get("size")
        if not isinstance(size, int):
            raise NetbootError("%s layer %s has no size" % (role, layer.get("digest")))
        log("net: %s: pulling %d bytes (%s)" % (role, size, layer["digest"][:19]))
        t0 = time.ticks_ms()

        attempts = []

        def make_sink():  # a download that starts over gets fresh pages; the partial ones go back
            for old in attempts:
                old.free()
            sink = PageSink(size)
            attempts.append(sink)
            return sink

        try:
            sink = self.client.fetch_blob_to_sink(pinned, layer["digest"], make_sink, size)
        except BaseException:
            for old in attempts:
                old.free()
            raise
        self.sinks.append(sink)
        ms = max(1, time.ticks_diff(time.ticks_ms(), t0))
        log("net: %s: %d bytes in %d ms (%.1f MB/s), sha256 verified" % (role, size, ms, size / ms / 1000))
        return sink.region()

    def free(self):
        for s in self.sinks:
            s.free()
        self.sinks = []


def _tls_wrapper(opts):
    from netboot import tls

    return tls.wrapper(opts)


def _cosign_policy(opts):
    """(policy, verifier): no key in this firmware -> off; else cloudboot.cosign (default enforce)."""
    from netboot import signing

    try:
        verifier = signing.verifier()
    except ValueError as exc:  # a key that is there but unusable must not mean "verify nothing"
        raise NetbootError("cosign: the firmware's %s section: %s" % (signing.SECTION, exc)) from None
    if verifier is None:
        return "off", None
    policy = opts.get("cloudboot.cosign", "enforce")
    if policy not in ("enforce", "warn", "off"):
        raise NetbootError("cloudboot.cosign=%s: want enforce, warn or off" % policy)
    log("cosign: %s (the firmware carries a P-256 key)" % policy)
    return policy, verifier


def plan_reference(lease, opts):
    """(reference, where it came from), or (None, why there is none). A boot file name that is no OCI
    reference (`pxelinux.0`) is passed over, as the Linux init does (oci.ref.bootfile_reference)."""
    from oci.errors import BadReference
    from oci.ref import bootfile_reference

    if lease.bootfile:
        try:
            return bootfile_reference(lease.bootfile), "DHCP boot file name"
        except BadReference as exc:
            log("net: boot file name %r ignored: not an OCI reference (%s)" % (lease.bootfile, exc))
    if opts.get("cloudboot.plan"):
        return opts["cloudboot.plan"], "cloudboot.plan="
    return None, "no plan reference as the DHCP boot file name and no cloudboot.plan= is set"


def _ask(entries, default, settings):
    """The plan's menu on the console, with the disk menu's keys and countdown (loader.menu)."""
    from loader import menu

    names = [name for name, _ in entries]
    m = settings.get("menu") or {}
    if m.get("prompt"):
        print(m["prompt"])
    pick = menu.choose(["%s (%s)" % (label, name) for name, label in entries], names.index(default),
                       m.get("timeout") or 0)
    return names[pick]


def choose_target(session, ref_text):
    from bootplan import PlanError, plan

    parsed = session.plan(ref_text)
    try:
        return plan.follow(parsed, session.arch, session.plan, target=session.opts.get("cloudboot.target", ""),
                           menu=session.opts.get("cloudboot.menu"), ask=_ask, limits=plan.limits_from(session.opts))
    except PlanError as exc:
        raise NetbootError("plan %s: %s" % (ref_text, exc)) from None


def materialize(session, t):
    """(kernel region, initrd region or None, command line) of a resolved OCI target."""
    from loader import kernel
    from oci.pull import target_layers, target_refs
    from uefi import core, mem

    if t.get("source") == "disk":
        raise NetbootError("target %r boots from a disk{} block: that is the Linux init's job (Path A), not the "
                           "firmware's" % t["name"])
    regions = {}
    cmdline_layer = ""
    for _, pinned, layer, role in target_layers(t, session.manifest):
        if role == "cmdline":
            raw = session.client.fetch_blob_bytes(pinned, layer["digest"], layer.get("size"), 64 << 10)
            cmdline_layer = raw.decode().strip()
        elif role in ("kernel", "initrd", "modules"):
            regions[role] = session.pull(pinned, layer, role)
    if "kernel" not in regions:
        refs = ", ".join(text for _, text in target_refs(t))
        raise NetbootError("target %r: no kernel layer in %s" % (t["name"], refs or "its references"))
    parts = [regions[r] for r in ("initrd", "modules") if r in regions]
    initrd = parts[0] if parts else None
    if len(parts) > 1:  # initrd + modules: the kernel unpacks concatenated cpio archives
        total = parts[0][1] + parts[1][1]
        joined = PageSink(total)
        session.sinks.append(joined)
        for addr, size in parts:
            joined.write(mem.view(addr, size))
        initrd = joined.region()
    kaddr, ksize = regions["kernel"]
    try:
        kaddr, ksize = kernel.unpack(kaddr, ksize)
    except OSError as exc:
        raise NetbootError("target %r: kernel: %s" % (t["name"], exc)) from None
    if kaddr != regions["kernel"][0]:  # unpacked into new pages (the packed ones were freed by unpack)
        for s in session.sinks:
            if s.addr == regions["kernel"][0]:
                s.addr = 0
        session.sinks.append(_Owned(kaddr, ksize, core))
    cmdline = session.opts.get("cloudboot.cmdline") or _render(session, t, t.get("cmdline") or cmdline_layer)
    return (kaddr, ksize), initrd, cmdline


def _render(session, t, text):
    """The plan's templates (bootplan.cmdtemplate) from the DHCP lease and the primary registry; the kernel's
    interface name is not known here, so {{.Iface}} is empty (klibc's ip= then takes any interface)."""
    from bootplan import cmdtemplate

    if "{{" not in text:
        return text
    lease = session.lease
    net = {} if lease is None else {"address": lease.address, "netmask": lease.netmask, "gateway": lease.gateway,
                                    "dns": lease.dns}
    primary = [t[f] for f in ("index", "kernel", "initrd", "modules") if t.get(f)]
    try:
        return cmdtemplate.render(text, cmdtemplate.values(ref=session.ref(primary[0]) if primary else None, **net))
    except cmdtemplate.TemplateError as exc:
        raise NetbootError("target %r cmdline (plan line %s): template: %s" % (t["name"], t.get("cmdline_line"),
                                                                               exc)) from None


class _Owned:
    """Pages we own that came from elsewhere (an unpacked kernel)."""

    def __init__(self, addr, size, core):
        self.addr, self.size, self.pos, self._core = addr, size, size, core

    def free(self):
        if self.addr:
            self._core.free_pages(self.addr, max(1, (self.size + 4095) // 4096))
            self.addr = 0


def boot_network():
    """The cascade step: False (with the reason printed) when there is nothing to boot from the network."""
    from netboot import link
    from oci.errors import OciError
    from uefi import handoff

    opts = options()
    t0 = time.ticks_ms()
    dhcp_s = grammar.duration(opts.get("cloudboot.dhcp.timeout", "20s"))
    try:
        nic, lease = link.bring_up(log, dhcp_s=dhcp_s)
    except OSError as exc:  # NetError, EfiError: no NIC, no link, no lease
        log("network boot skipped: %s" % exc)
        return False
    ref, where = plan_reference(lease, opts)
    if ref is None:
        nic.shutdown()
        log("network boot skipped: %s" % where)
        return False
    log("net: plan %s (from the %s)" % (ref, where))
    session = None
    try:
        session = Session(opts, lease)
        t = choose_target(session, ref)
        log('net: target "%s" index=%s kernel=%s initrd=%s' % (t["name"], t.get("index", ""), t.get("kernel", ""),
                                                              t.get("initrd", "")))
        kernel, initrd, cmdline = materialize(session, t)
    except (NetbootError, OciError, OSError, ValueError) as exc:
        if session is not None:
            session.free()
            session.transport.close()
        nic.shutdown()
        log("network boot failed: %s" % exc)
        return False
    session.transport.close()
    nic.shutdown()  # the device must stop DMA before the kernel owns the memory
    log("net: ready in %d ms; command line: %s" % (time.ticks_diff(time.ticks_ms(), t0), cmdline))
    try:
        handoff.start_image(kernel[0], kernel[1], cmdline, initrd)
    finally:
        session.free()
    return True
