"""SHA-256 computed on a thread of its own, beside the download it checks (CPython: the host CLI and the init).

A blob is received into one buffer while the previous one is hashed: hashlib and socket reads both release the
GIL, so on two CPUs they overlap. Under emulation it matters: SHA-256 runs at 75-77 MB/s in the arm64 and
riscv64 guests (TCG), about the speed of the link, so hashing in line cost the init a third of its download
time. The firmware hashes in line (no threads there).
"""

import hashlib
import threading
from _queue import SimpleQueue  # queue.SimpleQueue itself: queue.py imports collections, heapq (34 ms at boot)


class BackgroundSha256:
    """hashlib.sha256's update/digest/hexdigest, hashed on a worker thread; `update` copies the data (the
    caller reuses its buffer). `close` ends the worker (also when the download is abandoned); `digest` waits
    for it to finish what it was given."""

    #: chunks waiting for the worker (1 MiB each from the OCI client): bounds memory if hashing falls behind
    DEPTH = 8

    def __init__(self):
        self._h = hashlib.sha256()
        self._q = SimpleQueue()
        self._room = threading.Semaphore(self.DEPTH)
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._worker.start()

    def _run(self):
        while True:
            chunk = self._q.get()
            if chunk is None:
                return
            self._h.update(chunk)
            self._room.release()

    def update(self, data):
        if self._closed:
            raise ValueError("update after close")
        self._room.acquire()
        self._q.put(bytes(data))

    def close(self):
        if not self._closed:
            self._closed = True
            self._q.put(None)
            self._worker.join()

    def digest(self):
        self.close()
        return self._h.digest()

    def hexdigest(self):
        return self.digest().hex()
