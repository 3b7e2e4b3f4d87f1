"""``kofn offload``: plan, simulate and sweep energy-aware offloading of coded subtasks.

* ``kofn offload plan --instance FILE`` (or ``--seed S`` for a generated instance) prints the
  placement, its energy and its success probability; ``--simulate DRAWS`` checks them by
  Monte-Carlo. ``--set FIELD=VALUE`` overrides a generator parameter (``--set power=0.3``)
  or, with ``--instance``, a field of the file (``--set master.power=0.3``).
* ``kofn offload sweep --x power|cpu|deadline|n|k --policies igp,rop,aop,lcp,exact --seeds 20``
  writes CSV, JSON and a PNG plot under ``--out``.
* ``kofn offload example`` prints an instance file to start from.

This module imports only :mod:`offload` (no torch).
"""

from __future__ import annotations

import json
import shlex

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``offload`` sub-command and its ``plan``/``sweep``/``example`` actions."""
    p = subparsers.add_parser("offload", help="energy-aware offloading of coded subtasks",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="offload_command", metavar="ACTION", required=True)

    plan = sub.add_parser("plan", help="plan one instance and print the placement")
    src = plan.add_mutually_exclusive_group()
    src.add_argument("--instance", metavar="FILE", help="instance TOML file")
    src.add_argument("--seed", type=int, default=None,
                     help="generate an instance with the default parameters and this seed")
    plan.add_argument("--policy", default="igp",
                      help="igp, rop, aop, lcp, exact, aop-blind, lcp-blind or rop-once")
    plan.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="override a generator parameter (power=0.3) or, with --instance, "
                           "a field of the file (master.power=0.3); repeatable")
    plan.add_argument("--rng", type=int, default=0, help="seed of the policy's randomness")
    plan.add_argument("--simulate", type=int, default=0, metavar="DRAWS",
                      help="also simulate the placement this many times")
    plan.add_argument("--json", action="store_true", help="print JSON instead of text")
    plan.set_defaults(func=_plan)

    sw = sub.add_parser("sweep", help="sweep a parameter; write CSV, JSON and PNG")
    sw.add_argument("--x", required=True,
                    help="power, cpu, deadline, n, k, fail, decode, result, shape or slow")
    sw.add_argument("--policies", default="igp,rop,aop,lcp,exact",
                    help="comma-separated policy names")
    sw.add_argument("--seeds", type=int, default=20, help="instances per value")
    sw.add_argument("--values", default=None,
                    help="comma-separated values (generator units: W, Hz, s, count)")
    sw.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a generator parameter, e.g. --set power=0.3 (repeatable)")
    sw.add_argument("--out", default="results/offload", help="output folder")
    sw.add_argument("--name", default=None, help="file stem (default sweep_<x>)")
    sw.set_defaults(func=_sweep)

    ex = sub.add_parser("example", help="print an instance TOML file")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=_example)


def _overrides(items: list[str]):
    from offload.generator import GeneratorConfig

    fields = GeneratorConfig.__dataclass_fields__
    base = GeneratorConfig()
    kw = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"Argument '--set' must be FIELD=VALUE with FIELD one of "
                             f"{', '.join(fields)}, not {item!r}.")
        cur = getattr(base, key)
        if isinstance(cur, str):
            kw[key] = raw
        elif isinstance(cur, bool):
            kw[key] = raw.lower() in ("1", "true", "yes", "on")
        elif isinstance(cur, int) or key == "stragglers":
            kw[key] = int(raw)
        else:
            kw[key] = float(raw)
    return base.replace(**kw)


def _instance_with(path: str, items: list[str]):
    """Load the instance file at ``path`` with ``section.field=value`` overrides."""
    import tomllib
    from pathlib import Path

    from offload.generator import instance_from_dict, load_instance

    load_instance(path)  # the file's own errors first, with its name
    data = tomllib.loads(Path(path).read_text())
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"Argument '--set' must be SECTION.FIELD=VALUE with --instance, "
                             f"not {item!r}.")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"Argument '--set' names {section!r}, which is not a table.")
        table[name] = value
    return instance_from_dict(data)


def _plan(args) -> int:
    from offload.generator import generate, load_instance
    from offload.policies import get_policy
    from offload.simulate import simulate

    policy = get_policy(args.policy)
    if args.instance:
        inst = _instance_with(args.instance, args.set) if args.set else load_instance(
            args.instance)
    else:
        inst = generate(_overrides(args.set), seed=args.seed or 0)
    pl = policy.plan(inst, rng=args.rng)
    sim = simulate(inst, pl, draws=args.simulate, rng=args.rng + 1) if args.simulate else None
    if args.json:
        doc = {"placement": pl.to_dict(), "K": inst.K, "N": inst.N, "W": inst.W,
               "m_max": inst.m_max, "simulation": sim.to_dict() if sim else None}
        print(json.dumps(doc, indent=1))
        return 0
    status = "meets" if pl.feasible else "INFEASIBLE: misses"
    print(f"instance  K={inst.K} N={inst.N} W={inst.W} m_max={inst.m_max} "
          f"T={inst.budget.deadline:g}s eps={inst.budget.eps:g}")
    print(f"policy    {pl.policy}")
    print(f"local     m={pl.m} subtasks ({pl.m * inst.e_loc:.4f} J)")
    mod = inst.model_at(len(pl.workers))  # the links as this placement shares them
    print(f"workers   {len(pl.workers)}: {', '.join(map(str, pl.workers)) or '-'}")
    for i in pl.workers:
        print(f"  worker {i:3d}: d={inst.workers.distance[i]:6.1f} m  "
              f"f={inst.workers.f[i] / 1e9:.2f} GHz  t_tx={mod.t_tx[i]:.3f} s  "
              f"E={mod.cost[i]:.4f} J  p={mod.p[i]:.4f}")
    print(f"energy    {pl.energy:.4f} J")
    print(f"success   {pl.success:.6f} ({status} the budget 1-eps={1 - inst.budget.eps:g})")
    if sim:
        print(f"simulated hit rate {sim.hit_rate:.4f} +- {sim.hit_stderr:.4f} over {sim.draws} "
              f"draws, energy {sim.energy:.4f} J")
    return 0


def _sweep(args) -> int:
    from offload.experiments import AXES, sweep, write_outputs

    if args.x not in AXES:
        raise ValueError(f"Argument '--x' must be one of {', '.join(AXES)}, not {args.x!r}.")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    values = None
    if args.values:
        values = [float(v) for v in args.values.split(",")]
        if args.x in ("n", "k"):
            values = [int(v) for v in values]
    config = _overrides(args.set)
    res = sweep(args.x, values=values, policies=policies, seeds=args.seeds, config=config,
                progress=lambda line: print(line, flush=True))
    parts = ["--x", args.x, "--policies", args.policies, "--seeds", str(args.seeds)]
    if args.values:
        parts += ["--values", args.values]
    for item in args.set:
        parts += ["--set", item]
    command = "kofn offload sweep " + " ".join(shlex.quote(a) for a in parts)
    for note in res.skipped:
        print(f"note: skipped {args.x}={note['x']:g}: {note['reason']}")
    if not res.values:
        raise ValueError(f"Argument '--values' left no valid value of {args.x!r} to sweep.")
    for path in write_outputs(res, args.out, args.name, command=command):
        print(f"wrote {path}")
    return 0


def _example(args) -> int:
    from offload.generator import generate, to_toml

    print(to_toml(generate(seed=args.seed)), end="")
    return 0
