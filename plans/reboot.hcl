# Path C: the init stages the chosen target on the cache disk (`cloud-boot cache-disk`), writes a boot entry
# for it and reboots; from then on the firmware boots the target directly (no network, no kexec) until
# `cloud-boot reset`. For hypervisors without kexec or firmware networking (Apple's Virtualization framework).
locals {
  registry = "192.168.64.1:5000/boot"
  console  = arch == "arm64" ? "hvc0" : "ttyS0"
}
default_target = "debian"
exit           = "reboot"
menu {
  timeout = "10s"
  prompt  = "cloud-boot: choose what this machine boots from now on"
}
target "debian" {
  label   = "Debian 13 (staged, then started by the firmware)"
  index   = "${local.registry}/debian:13"
  cmdline = ["console=${local.console}", "console=tty0", "ro"]
}
target "rescue" {
  label   = "Rescue system (this boot only: kexec, nothing staged)"
  index   = "${local.registry}/rescue:latest"
  cmdline = "console=${local.console} rescue"
  exit    = "kexec"
}
