"""Pulling a 256 MiB blob from Debian's docker-registry on 127.0.0.1: our portable client (CPython transport,
streamed with sha256 verification) against `curl` on the same blob URL (no verification), as throughput."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import report
from oci.client import Client, sha256_digest
from oci.ref import parse
from oci.transport_cpython import Transport

RUNS = 3
SIZE = 256 << 20


class _Null:
    def write(self, data) -> None:
        pass


def main() -> None:
    from cloudboot.registry.local import Registry, ensure_registry_packages

    ensure_registry_packages()
    curl = shutil.which("curl")
    if not curl:
        raise SystemExit("bench_oci: curl is missing (apt-get install curl)")
    work = Path(tempfile.mkdtemp(prefix="cloudboot-bench-oci-"))
    reg = Registry(work)
    try:
        data = os.urandom(1 << 20) * (SIZE >> 20)
        digest = sha256_digest(data)
        ref = parse(f"{reg.host}/bench/blob:1")
        client = Client(Transport(timeout=60))
        client.push_blob(ref, data, digest, len(data))
        del data
        url = f"{ref.base_url()}/blobs/{digest}"

        def ours() -> float:
            t0 = time.monotonic()
            assert client.fetch_blob(ref, digest, _Null(), size=SIZE) == SIZE
            return time.monotonic() - t0

        def with_curl() -> float:
            t0 = time.monotonic()
            out = subprocess.run([curl, "-sSfL", "-o", "/dev/null", "-w", "%{size_download}", url],
                                 capture_output=True, text=True, check=True).stdout
            assert int(out) == SIZE
            return time.monotonic() - t0

        ours()  # warm the page cache on the registry side
        t_ours = statistics.median(ours() for _ in range(RUNS))
        t_ref = statistics.median(with_curl() for _ in range(RUNS))
        mib = SIZE / (1 << 20)
        report("OCI 256 MiB blob pull (MiB/s)", mib / t_ours, "curl", mib / t_ref, unit="MiB/s")
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
