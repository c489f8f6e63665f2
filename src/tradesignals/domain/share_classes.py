"""A ticker's share-class root: the one spelling rule that the evaluation's twin finder
(``models/share_classes.py``) and the news symbol mapping (``news/names.py``) both read.

The root is the ticker without a share-class suffix: an explicit one (``.``, ``-``, ``/`` or a
space, then one or two letters: ``BRK.B``, ``BF-B``, ``HEI.A``) or a bare trailing class letter (one
of ``A B C K L``: ``GOOGL`` → ``GOOG``, ``DISCK`` → ``DISC``, ``FOXA`` → ``FOX``) on a root of at
least two characters. A bare letter is only a candidate (``BAC`` is not a class of ``BA``): callers
confirm it with more facts (prices for the twin finder, one SEC company for the news mapping).
"""

from __future__ import annotations

import re

CLASS_LETTERS = frozenset("ABCKL")

_EXPLICIT = re.compile(r"^(?P<root>[A-Z0-9]+)[.\-/ ](?P<cls>[A-Z]{1,2})$")


def share_class_root(symbol: str) -> tuple[str, bool]:
    """``(root, explicit)``: the ticker without its class suffix, and whether the suffix was explicit.

    A ticker with no recognisable suffix is its own root (``explicit`` False).
    """
    s = symbol.strip().upper()
    m = _EXPLICIT.match(s)
    if m:
        return m.group("root"), True
    if len(s) >= 3 and s[-1] in CLASS_LETTERS:
        return s[:-1], False
    return s, False


__all__ = ["CLASS_LETTERS", "share_class_root"]
