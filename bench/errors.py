"""Errors the user can act on. The CLI prints their message alone, without a traceback."""


class InputError(Exception):
    """Bad input (file, option, credentials, host): say what and where, send no load."""


class PreflightError(InputError):
    """The target refused or did not answer the preflight requests; ``cls``: the error class, when it answered."""

    def __init__(self, message: str, cls: str | None = None) -> None:
        super().__init__(message)
        self.cls = cls


class RunFolderError(Exception):
    """The run folder could not be written (a full disk): one line, exit 1; the records' whereabouts in the message."""
