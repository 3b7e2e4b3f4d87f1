"""Exact t-privacy checks shared by the degree-table codes (MatDot, GASP).

One case per column: a side's data blocks are 1 x 1 (the secret values), its ``t`` masks
are the enumerated randomness, and the view is what the colluding workers receive.
"""

import numpy as np

from coding.privacy import exact_independence


def _view(code, side, cols, n_data_a, n_data_b):
    t = code.t

    def view(secret, r):
        cases = r.shape[0]
        data = np.tile(np.asarray(secret, dtype=np.int64).reshape(-1, 1, 1), (1, 1, cases))
        masks = r.T.reshape(t, 1, cases)
        zero_a = np.zeros((n_data_a, 1, 1), dtype=np.int64)
        zero_b = np.zeros((n_data_b, 1, 1), dtype=np.int64)
        zero_m = np.zeros((t, 1, 1), dtype=np.int64)
        if side == "a":
            shares = code.encode_with_masks(data, zero_b, masks, zero_m)[0]
        else:
            shares = code.encode_with_masks(zero_a, data, zero_m, masks)[1]
        return shares[list(cols)].reshape(len(cols), cases).T

    return view


def side_is_private(code, side, cols, n_data_a, n_data_b, secrets, p):
    """Whether the workers ``cols`` see the same distribution for both ``secrets``."""
    res = exact_independence(_view(code, side, cols, n_data_a, n_data_b), *secrets, p=p,
                             n_random=code.t)
    return res.passed


def side_leaks(code, side, cols, n_data_a, n_data_b, p):
    """Whether the workers ``cols`` can tell some secret from zero.

    ``t + 1`` workers see one mask-free combination of the data blocks, which is nonzero on
    at least one unit secret (it may vanish on a particular pair of secrets).
    """
    blocks = n_data_a if side == "a" else n_data_b
    zero = [0] * blocks
    units = [[int(i == j) for i in range(blocks)] for j in range(blocks)]
    return not all(side_is_private(code, side, cols, n_data_a, n_data_b, (zero, u), p)
                   for u in units)
