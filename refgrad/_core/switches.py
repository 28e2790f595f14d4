"""Execution-path switches: a boolean held in a :class:`contextvars.ContextVar`, set for a ``with`` block.

A switch chooses between two implementations that give the same numbers (a fast path and its plain twin);
tests run both.  Being a context variable, the choice applies to the current thread (or asyncio task) only
and is restored on leaving the block, also when the block raises.
"""
import contextlib

from .checks import InputTypeError, describe


@contextlib.contextmanager
def switched(var, enabled, name="enabled"):
    """Set the boolean context variable ``var`` to ``enabled`` inside the ``with`` block.

    Raises :class:`~refgrad._core.checks.InputTypeError` (a ``TypeError`` and a ``ValueError``) naming ``name``
    when ``enabled`` is not a bool.
    """
    if not isinstance(enabled, bool):
        raise InputTypeError(f"{name} must be a bool (True or False); got {describe(enabled)} of type "
                             f"{type(enabled).__name__}")
    token = var.set(enabled)
    try:
        yield
    finally:
        var.reset(token)
