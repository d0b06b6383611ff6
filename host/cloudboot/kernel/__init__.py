"""Our bootstrap kernels: Debian's `linux` source, tinyconfig plus the fragments in the repository's `kernel/`,
built with LLVM in the pinned build root, cached by their inputs and bit-identical on rebuild."""
