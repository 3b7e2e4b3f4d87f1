"""Offloading policies: each is an object with ``plan(instance, *, rng) -> Placement``.

The simulator, the sweeps and the runtime all call these same objects.
"""

from offload.errors import UnknownPolicyError
from offload.policies.all_offload import AOP
from offload.policies.exact import Exact
from offload.policies.igp import IGP
from offload.policies.local_first import LCP
from offload.policies.random import ROP

__all__ = ["AOP", "Exact", "IGP", "LCP", "ROP", "POLICIES", "get_policy"]

POLICIES = {"igp": IGP, "rop": ROP, "aop": AOP, "lcp": LCP, "exact": Exact}


def get_policy(name: str):
    """Return a policy object with default parameters for ``name`` (a key of ``POLICIES``).

    Raises
    ------
    UnknownPolicyError
        If ``name`` is not a registered policy; the message lists the allowed names.
    """
    if not isinstance(name, str) or name.lower() not in POLICIES:
        raise UnknownPolicyError(str(name), list(POLICIES))
    return POLICIES[name.lower()]()
