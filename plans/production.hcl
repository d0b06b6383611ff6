# Production-shaped plan (REFERENCE §2.6 a): split OCI refs, an LLDP-driven hostname, per-arch targets,
# a menu, and a disk fallback. Registries are addresses on the boot network (no public registry).
default_target = "primary"
dns            = ["192.0.2.53", "192.0.2.54"]

locals {
  # Locals may use other locals (the original could not): the registry is built from its parts.
  registry_host     = "192.0.2.10:5000"
  registry          = "${local.registry_host}/boot"
  fallback_registry = "127.0.0.1:5000/boot"
  console           = arch == "arm64" ? "ttyAMA0" : "ttyS0"
  base_cmdline      = "console=${local.console} console=tty0 ro"
}

menu {
  timeout = "5s"
  prompt  = "cloud-boot: choose a target"
}

target "primary" {
  label   = "Primary (${arch})"
  version = "6.12"
  kernel  = "${local.registry}/kernel:${self.version}"
  initrd  = "${local.registry}/initrd:${self.version}"
  modules = "${local.registry}/modules:${self.version}"
  cmdline = lldp.available ? "${local.base_cmdline} hostname=node-${lldp.port_id}" : local.base_cmdline
}

target "rescue" {
  arch    = "amd64"
  label   = "Rescue shell (amd64)"
  index   = "${local.fallback_registry}/rescue:latest"
  cmdline = ["console=${local.console}", "rescue", lldp.available ? "lldp_switch=${lldp.system_name}" : null]
}

target "arm-edge" {
  arch    = "arm64"
  label   = "Edge node (arm64)"
  kernel  = "${local.registry}/edge-kernel:latest"
  modules = "${local.registry}/edge-modules:latest"
  cmdline = "console=${local.console} quiet"
}

target "from-disk" {
  label   = "Installed system on /dev/vda2"
  cmdline = "console=${local.console} ro root=/dev/vda2"
  disk {
    device = "/dev/vda2"
    fs     = "ext4"
  }
}
