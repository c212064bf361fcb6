"""User-facing errors. Each message is one line meant for the user; the CLI prints it and exits 2.

Pure Python: the CLI can catch these without importing torch.
"""
from __future__ import annotations


class CostmodelError(Exception):
    """Base of every error caused by what the user gave: a SPEC, an input, a model."""
