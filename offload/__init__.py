"""Energy-aware offloading of MDS-coded subtasks: model, policies, simulator, experiments.

A master splits a task into ``K`` row blocks, MDS-encodes them into ``N`` coded subtasks and
places each one locally or on one of ``W`` straggling workers; any ``K`` results suffice.
A policy (``plan(instance, *, rng) -> Placement``) picks the placement of least energy that
still meets the latency budget. See ``docs/offload.md``.
"""

from offload.bounds import SAABound, saa_bound
from offload.errors import InstanceError, UnknownPolicyError
from offload.experiments import AXES, SweepResult, sweep, write_outputs
from offload.generator import GeneratorConfig, generate, instance_from_dict, load_instance, to_toml
from offload.model import (
    Budget,
    Channel,
    Instance,
    Master,
    Task,
    WorkerModel,
    Workers,
    completion_probability,
)
from offload.pb import batch_pmf, pmf, tail
from offload.placement import Placement, evaluate, most_reliable
from offload.policies import AOP, IGP, LCP, POLICIES, ROP, Exact, get_policy
from offload.replan import ReplanResult, simulate_replan
from offload.simulate import SimResult, simulate
from offload.world import LAWS, LinkShare, ResultLink, Straggler

__all__ = [
    "AOP", "AXES", "LAWS", "LinkShare", "ReplanResult", "ResultLink", "SAABound", "Straggler",
    "saa_bound", "simulate_replan", "Budget", "Channel", "Exact", "GeneratorConfig", "IGP", "Instance",
    "InstanceError", "LCP", "Master", "POLICIES", "Placement", "ROP", "SimResult",
    "SweepResult", "Task", "UnknownPolicyError", "WorkerModel", "Workers", "batch_pmf",
    "completion_probability", "evaluate", "generate", "get_policy", "instance_from_dict",
    "load_instance", "most_reliable", "pmf", "simulate", "sweep", "tail", "to_toml",
    "write_outputs",
]
