"""kofn's coding core: pure math on numpy (and galois for GF(p)); no I/O, no torch.

Codes share one shape (galois ``ReedSolomon``, zfec): ``encode(message) -> (n, ...)`` and
``decode(shards, indices) -> (k, ...)`` from any sufficient set of indices, with read-only
``n``, ``k`` and ``field`` where they apply.
"""

from .errors import DuplicateIndexError, KofnError, NotEnoughShardsError, OverflowRiskError
from .gasp import GASPCode
from .gfp import gfp_inv, gfp_matmul, gfp_random, matmul_plan
from .gradient import GradientCode
from .matdot import MatDotCode, SecureMatDotCode
from .mds import MDSCode
from .multicast import MulticastPlan, Transmission, coded_multicast
from .polynomial import PolynomialCode
from .privacy import IndependenceResult, exact_independence, independence_test
from .quantize import Quantizer, choose_frac_bits, next_prime
from .secure import SecureMatMulCode
from .shamir import SecretShareCode, lagrange_matrix

__all__ = [
    "DuplicateIndexError",
    "GASPCode",
    "GradientCode",
    "IndependenceResult",
    "KofnError",
    "MDSCode",
    "MatDotCode",
    "MulticastPlan",
    "NotEnoughShardsError",
    "OverflowRiskError",
    "PolynomialCode",
    "Quantizer",
    "SecretShareCode",
    "SecureMatDotCode",
    "SecureMatMulCode",
    "Transmission",
    "choose_frac_bits",
    "coded_multicast",
    "exact_independence",
    "gfp_inv",
    "gfp_matmul",
    "gfp_random",
    "independence_test",
    "lagrange_matrix",
    "matmul_plan",
    "next_prime",
]
