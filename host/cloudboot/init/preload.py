"""libcrypto loaded and started on a thread while the init imports (CPython's SHA-256, of every download, is
OpenSSL's).

Under TCG, `import hashlib` took 51-58 ms of the arm64 init's start: dlopen's relocation of libcrypto, then
OpenSSL's set-up (configuration, the default provider, its digests). ctypes holds the GIL through its own dlopen
but releases it around calls into C, so libc's dlopen and OpenSSL's set-up called through ctypes run on the second
CPU beside the imports; `import _hashlib` then finds the library loaded and SHA-256 fetched (natively: 0.25 ms
instead of 3).

It also defers `sysconfig`: CPython 3.14's ctypes imports it at module level and uses it only on Android and
Cygwin (in the riscv64 guest under TCG, `import ctypes` took 0.16-0.17 s with it, 0.12-0.13 s without)."""

from __future__ import annotations

LIBRARY = "libcrypto.so.3"
RTLD_NOW = 2
OPENSSL_INIT_LOAD_CONFIG = 0x40


def start() -> None:
    """Begin on a thread of its own (nothing waits for it: hashlib does all this itself if it has not happened)."""
    import _thread
    import sys

    if sys.version_info >= (3, 14):
        defer("sysconfig")
    _thread.start_new_thread(_load, ())


def defer(name: str) -> None:
    """Make `import name` cheap: the module object goes into sys.modules with its spec, empty, and its code runs
    at the first access to anything else in it (a module __getattr__, PEP 562; importlib's LazyLoader would run
    it at the import statement itself, which reads __spec__). Nothing happens when it is imported already or
    cannot be found."""
    import importlib.util
    import sys

    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    import _thread

    module = importlib.util.module_from_spec(spec)
    lock = _thread.RLock()  # as an import's module lock: a second thread waits for the code to finish running
    ran = []

    def load(attr: str) -> object:
        # stays the module's __getattr__ while the code runs (a thread that found it gone would see a half-run
        # module); only a re-entry from the module's own code, in this thread, gets past the lock meanwhile
        with lock:
            if not ran:
                ran.append(True)
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(name, None)  # as a failed import leaves it: the next import tries again
                    raise
                if module.__dict__.get("__getattr__") is load:  # from now on a missing name is an AttributeError
                    del module.__dict__["__getattr__"]
        if attr in module.__dict__:
            return module.__dict__[attr]
        own = module.__dict__.get("__getattr__")
        if own is not None and own is not load:  # the module's own PEP 562 hook
            return own(attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = load
    sys.modules[name] = module


def _load() -> None:
    try:
        import ctypes

        dlopen = ctypes.CDLL(None).dlopen
        dlopen.restype = ctypes.c_void_p
        if not dlopen(LIBRARY.encode(), RTLD_NOW):  # the handle is kept: the library stays loaded for _hashlib
            return
        crypto = ctypes.CDLL(LIBRARY)  # loaded already: no relocation under the GIL
        crypto.OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, None)
        crypto.EVP_MD_fetch.restype = ctypes.c_void_p
        crypto.EVP_MD_fetch(None, b"SHA256", None)  # kept: OpenSSL caches the fetched method for hashlib
    except Exception:  # a speed-up only: hashlib reports a missing libcrypto itself
        pass
