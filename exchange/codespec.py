"""``CodeSpec``: the name the round's code had when it was one class with a mode string.

Codes are objects now (:mod:`exchange.codes`); ``CodeSpec`` is their base class
:class:`~exchange.codes.base.Code`, and calling it with a name, ``CodeSpec("mds", 6,
k=4)``, builds the registered class for that name (here ``MDS(6, k=4)``). ``MODES`` lists
the registered names.
"""

from __future__ import annotations

from exchange.codes import CODES, Code, code_names
from exchange.codes.base import check_indices as _check_indices
from exchange.codes.base import check_update as _check_update
from exchange.codes.base import rows as _rows
from exchange.codes.secure import SECURE_LAYOUT

__all__ = ["CODES", "MODES", "SECURE_LAYOUT", "CodeSpec"]

CodeSpec = Code

#: The registered code names (at import time; see :func:`exchange.codes.code_names`).
MODES = code_names()

__all__ += ["_check_indices", "_check_update", "_rows"]
