"""netboot (firmware-only): Path D, booting from the network by the firmware alone.

`virtio` is our virtio-net driver's control side (the packet path is C: `_net`), `link` finds the NIC and
gets a DHCP lease, `boot` is the cascade step: the plan from a registry, the target's kernel and initrd
into pages, cosign, then the same hand-off as the disk loader.
"""
