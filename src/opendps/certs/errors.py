"""The one error type of the certificate tools: its message is the one line a user sees."""

from __future__ import annotations


class CertError(Exception):
    """A certificate, key or file the tools cannot use, with a message fit to print."""


class WrongPasswordError(CertError):
    """A key or PFX is encrypted and the password is missing or wrong."""


class OutputExistsError(CertError):
    """A file would be overwritten and ``force`` was not given."""
