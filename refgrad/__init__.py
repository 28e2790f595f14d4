"""refgrad: reference Monte Carlo gradient estimators for discrete random variables, with exact oracles."""
__version__ = "0.1.0"
