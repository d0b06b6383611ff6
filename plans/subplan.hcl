# A plan that hands over to another plan (REFERENCE §2.6 d): the inner plan is fetched and selected
# afresh (cloudboot.target does not carry over), at most 8 plans deep.
default_target = "live"

locals {
  registry = "192.0.2.10:5000/boot"
}

menu {
  timeout = "10"
}

target "live" {
  label   = "Live systems (inner plan)"
  subplan = "${local.registry}/inner-plan:v1"
}

target "local-disk" {
  label   = "Local disk"
  cmdline = "root=UUID=0b6e5f4c-3c1a-4b9e-9d2a-7f0e1c2d3b4a ro"
  disk {
    device = "UUID=0b6e5f4c-3c1a-4b9e-9d2a-7f0e1c2d3b4a"
  }
}
