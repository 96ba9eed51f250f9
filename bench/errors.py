"""Errors the user can act on. The CLI prints their message alone, without a traceback."""


class InputError(Exception):
    """Bad input (file, option, credentials, host): say what and where, send no load."""


class PreflightError(InputError):
    """The target refused or did not answer the preflight requests."""
