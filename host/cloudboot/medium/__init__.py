"""The cloud medium (`cloud-boot build`, `make iso`): per arch a UKI whose stub is our firmware, carrying a
Debian kernel, our init's initramfs and a build-time command line, all on one ESP inside a hybrid ISO; and
`cloud-boot demo`, which boots it against a throw-away registry.

`options` checks every input before anything is downloaded or built; `parts` makes the per-arch pieces
(kernel, initramfs: cached by their inputs); `build` assembles UKIs, ESP and ISO and reports sizes; `demo`
runs the showcase and its non-interactive check.
"""
