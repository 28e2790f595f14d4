"""What the framework adapters share: conversion of containers and plain values to arrays."""
import numpy as np

from refgrad._core.checks import InputTypeError, describe

__all__ = ["convert_nested"]


def convert_nested(x, convert, what):
    """``convert`` applied through lists, tuples and dicts; other values through :func:`numpy.asarray`.

    ``convert(x)`` returns the array for a framework value, or None for anything else; ``what``
    names the framework's array type in the error raised for strings, None and other objects.
    """
    out = convert(x)
    if out is not None:
        return out
    if isinstance(x, dict):
        return {k: convert_nested(v, convert, what) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        converted = [convert_nested(v, convert, what) for v in x]
        return converted if isinstance(x, list) else tuple(converted)
    message = f"x must be {what}, an array, a number or a list/tuple/dict of them; got {describe(x)}"
    if isinstance(x, (str, bytes)) or x is None:
        raise InputTypeError(message)
    arr = np.asarray(x)
    if arr.dtype.kind in "OUSV":
        raise InputTypeError(f"{message} of type {type(x).__name__}")
    return arr
