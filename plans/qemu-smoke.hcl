# QEMU smoke test (REFERENCE §2.6 b): 10.0.2.2 is the host seen from QEMU's user network.
default_target = "alpine"

locals {
  registry    = "10.0.2.2:5000/boot"
  alpine_repo = "http://10.0.2.2:8080/alpine"
  console     = arch == "arm64" ? "ttyAMA0" : "ttyS0"
}

target "alpine" {
  version = "3.21"
  label   = "Alpine ${self.version} netboot (smoke test)"
  index   = "${local.registry}/alpine:${self.version}"
  # {{.IPSpec}} is filled in at boot from the network configuration, after plan evaluation.
  cmdline = ["console=${local.console}", "quiet", "ip={{.IPSpec}}",
             "alpine_repo=${local.alpine_repo}/v${self.version}/main"]
}

target "alpine-debug" {
  version = "3.21"
  label   = "Alpine ${self.version} netboot (debug)"
  index   = "${local.registry}/alpine:${self.version}"
  cmdline = ["console=${local.console}", "ip={{.IPSpec}}", "debug_init=yes",
             "alpine_repo=${local.alpine_repo}/v${self.version}/main"]
}

target "debian" {
  label   = "Debian 13"
  index   = "${local.registry}/debian:13"
  cmdline = "console=${local.console} ip=dhcp"
}
