# Boot an installed system found by its filesystem label (a cloud image's root), or by partition label.
default_target = "debian-cloud"

locals {
  console = arch == "arm64" ? "ttyAMA0" : "ttyS0"
}

target "debian-cloud" {
  label   = "Debian cloud image (LABEL=cloudimg-rootfs)"
  cmdline = "console=${local.console} root=LABEL=cloudimg-rootfs ro"
  disk {
    device = "LABEL=cloudimg-rootfs"
    fs     = "ext4"
  }
}

target "fedora-btrfs" {
  label   = "Fedora on btrfs (PARTLABEL=root)"
  cmdline = ["console=${local.console}", "root=PARTLABEL=root", "rootflags=subvol=root", "ro"]
  disk {
    device = "PARTLABEL=root"
    fs     = "btrfs"
  }
}
