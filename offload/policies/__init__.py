"""Offloading policies: each is an object with ``plan(instance, *, rng) -> Placement``.

The simulator, the sweeps and the runtime all call these same objects. ``POLICIES`` maps a
name to a factory without arguments: the five policies of the study, then the earlier,
budget-blind variants of the baselines under their own names.
"""

from functools import partial

from offload.errors import UnknownPolicyError
from offload.policies.all_offload import AOP
from offload.policies.exact import Exact
from offload.policies.igp import IGP
from offload.policies.local_first import LCP
from offload.policies.random import ROP

__all__ = ["AOP", "Exact", "IGP", "LCP", "ROP", "POLICIES", "get_policy"]

POLICIES = {
    "igp": IGP, "rop": ROP, "aop": AOP, "lcp": LCP, "exact": Exact,
    "aop-blind": partial(AOP, budget="blind"),
    "lcp-blind": partial(LCP, budget="blind"),
    "rop-once": partial(ROP, tries=1),
}


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
