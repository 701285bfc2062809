"""Prompt bases, registered by name: ``head`` (no prompt), ``pt`` (shallow), ``pt2`` (deep prefixes).

A base turns the input word embeddings into the keyword arguments of the frozen backbone and says
which positions hold input text (for pooling); it knows nothing about tasks or objectives.
"""

from prompttune.bases import head, pt, pt2  # noqa: F401  (registration)
from prompttune.bases.base import BASES, BackboneInputs, PromptBase

__all__ = ["BASES", "BackboneInputs", "PromptBase"]
