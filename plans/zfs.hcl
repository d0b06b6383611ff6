# Proxmox-style root on ZFS (REFERENCE §2.6 c): a dataset, with kernel and initrd paths inside it.
default_target = "pve"

locals {
  console = arch == "arm64" ? "ttyAMA0" : "ttyS0"
  dataset = "rpool/ROOT/pve-1"
}

target "pve" {
  arch    = "amd64"
  label   = "Proxmox VE (ZFS ${local.dataset})"
  cmdline = "root=ZFS=${local.dataset} boot=zfs console=${local.console} ro"
  disk {
    device = local.dataset
    fs     = "zfs"
    kernel = "/boot/vmlinuz-pve"
    initrd = "/boot/initrd.img-pve"
  }
}
