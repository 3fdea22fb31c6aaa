"""Errors a user can cause; the CLI prints their message as one line and exits non-zero."""
from __future__ import annotations

from .arch import ArchError
from .store import StoreError


class SvgeError(Exception):
    """A request that cannot be carried out as asked (bad option mix, nothing to work on ...)."""


#: FloatingPointError: training diverged (the message suggests a lower learning rate)
USER_ERRORS: tuple[type[Exception], ...] = (SvgeError, ArchError, StoreError, FloatingPointError)
