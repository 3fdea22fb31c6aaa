"""Errors a user can cause; the CLI prints their message as one line and exits non-zero.

Every such error is an `SvgeError`: `ArchError` (a cell breaks a rule, in `arch`)
and `StoreError` (a file cannot be read or written, in `errors`, raised by `storage.store`) are kinds of it.
"""

from __future__ import annotations


class SvgeError(Exception):
    """A request that cannot be carried out as asked (bad option mix, nothing to work on ...)."""


#: FloatingPointError: training diverged (the message suggests a lower learning rate)
USER_ERRORS: tuple[type[Exception], ...] = (SvgeError, FloatingPointError)


class StoreError(SvgeError):
    """A file that cannot be used: missing, corrupt, of another kind, space or version."""
