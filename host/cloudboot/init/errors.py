"""init's failure types: the message is what follows `FATAL: ` on the console."""


class InitError(Exception):
    """A boot failure with a message for the operator (what was wrong, what was seen, what to set)."""


class KexecLoadError(InitError):
    """kexec_load refused the segments; `errno` says why (kexec.load tries kexec_file_load after ENOSYS/EPERM)."""

    def __init__(self, message: str, err: int) -> None:
        super().__init__(message)
        self.errno = err
