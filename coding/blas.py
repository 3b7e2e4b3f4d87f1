"""BLAS threading control for skinny products.

A code's coefficient matrix is tiny (a few rows) while the payload is wide, so each BLAS
call is memory-bound. OpenBLAS nevertheless splits such calls across threads, and on a busy
machine the threads' hand-off costs far more than the work: measured here, a (4, 8) @
(8, 131072) float64 product took 12-20 ms with default threads and 0.9 ms on one thread.
Square products (``gfp_matmul``) do benefit from threads and are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run the enclosed BLAS calls on one thread (restored on exit)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield
