"""Where the firmware's network boot sits (bootplan.netorder), and which DHCP boot file names are plan references
(oci.ref.bootfile_reference, shared by the Linux init and the firmware's network boot)."""

from bootplan import netorder
from oci.errors import BadReference
from oci.ref import bootfile_reference

UKI = "\\EFI\\Linux\\cloud-boot-x86_64.efi"


class Probe:
    """The UKI lookup: counts its calls (it scans volumes, so only asked when the answer depends on it)."""

    def __init__(self, found):
        self.found = found
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.found


def test_net_keys_decide_alone():
    for opts, where in (({"cloudboot.net": "0", "cloudboot.plan": "r.example/p:1"}, "off"),
                        ({"cloudboot.net": "1"}, "first"), ({"cloudboot.net": "1", "cloudboot.plan": "r.example/p"},
                                                            "first"), ({}, "last")):
        probe = Probe(UKI)
        got, why = netorder.place(opts, probe)
        assert got == where, (opts, got, why)
        assert probe.calls == 0
    assert "cloudboot.net=0" in netorder.place({"cloudboot.net": "0"}, Probe(None))[1]


def test_plan_goes_to_the_uki_when_the_medium_has_one():
    """The cloud medium: a cloudboot.plan= (CloudBootCmdline or load options) is the UKI's init's to take."""
    probe = Probe(UKI)
    where, why = netorder.place({"cloudboot.plan": "r.example/p:1"}, probe)
    assert where == "last" and probe.calls == 1
    assert UKI in why and "Linux init takes the plan" in why and "cloudboot.net=1" in why
    where, why = netorder.place({"cloudboot.plan": "r.example/p:1"}, Probe(None))
    assert where == "first" and "no cloud-boot UKI for this arch" in why


def test_bootfile_reference():
    for text in ("registry.example/plans/demo:v1", "10.0.2.2:5000/plans/demo:v1", "localhost/p",
                 "http://reg.example:8080/a/b@sha256:" + "ab" * 32, " oci://[::1]:5000/p:1 "):
        assert bootfile_reference(text) == text.strip(), text
    for text, why in (("pxelinux.0", "pxelinux.0"), ("boot/grubx64.efi", "'boot' is not a registry host"),
                      ("ipxe/undionly.kpxe", "'ipxe' is not a registry host"), ("", "")):
        try:
            bootfile_reference(text)
        except BadReference as exc:
            assert why in str(exc), (text, str(exc))
        else:
            raise AssertionError("%r taken as a plan reference" % text)
