"""refgrad's validation suite: ``python -m validation``.

A client of refgrad's public API only.  Cases live in :mod:`validation.cases`.
"""
