"""The one error type the CLI reports as a clean message (no traceback)."""


class CloudBootError(Exception):
    """A user-facing failure: the message names what was wrong and where."""


class MissingTool(CloudBootError):
    """An external program is absent; the message names the Debian package providing it."""

    def __init__(self, tool: str, package: str, why: str = "") -> None:
        msg = f"'{tool}' not found: install the Debian package '{package}' (apt-get install {package})"
        if why:
            msg += f"; needed for {why}"
        super().__init__(msg)
        self.tool, self.package = tool, package
