"""Where the firmware's own network boot (Path D) sits in its boot cascade, decided from the boot's cloudboot.*
options and whether the boot medium carries a cloud-boot UKI for this arch.

The cloud medium (`cloud-boot build`) puts a UKI whose Linux init fetches the plan next to the firmware; a
`cloudboot.plan=` in CloudBootCmdline or the load options is then the init's to handle, so it alone does not put
the firmware's network step first. Rule, first that applies:
  cloudboot.net=0                        off
  cloudboot.net=1                        first
  cloudboot.plan= and no UKI on the medium   first
  otherwise                              last (after the disks; the UKI, when there is one, boots before it)
"""


def place(opts, uki):
    """("off" | "first" | "last", reason) for the network step. `opts`: the checked cloudboot.* options;
    `uki`: a callable giving the cloud-boot UKI for this arch on the boot medium (a description) or None,
    called only when the answer depends on it."""
    net = opts.get("cloudboot.net", "")
    if net == "0":
        return "off", "cloudboot.net=0"
    if net == "1":
        return "first", "cloudboot.net=1"
    if not opts.get("cloudboot.plan"):
        return "last", "no cloudboot.plan=; cloudboot.net=1 puts it first, =0 turns it off"
    found = uki()
    if found is None:
        return "first", "cloudboot.plan= is set and no cloud-boot UKI for this arch is on the medium"
    return "last", ("cloudboot.plan= is set, but %s is on the medium: its Linux init takes the plan "
                    "(cloudboot.net=1 puts the network first)" % found)
