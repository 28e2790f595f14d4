"""Validation cases, one module each; see validation.runner.CASE_MODULES for the order."""
