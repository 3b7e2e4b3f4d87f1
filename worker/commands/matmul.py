"""``kofn matmul``: a coded matrix-multiplication job on real executors through the store.

Without ``--plan``, the command starts ``--n`` executors with the chosen launcher (their
start-up is not timed), runs one job (encode, upload encrypted, wait for the first
decodable set, decode, check) and writes a JSON report. With ``--plan POLICY[,...]
--instance FILE`` it places the instance's ``N`` MDS-coded subtasks with each policy, runs
each placement ``--runs`` times (default 300) on ``--launcher`` executors started once and
serving every run, each emulating the worker it is given per run, and writes the
predicted-against-measured report with Wilson 95 % intervals (see
:mod:`worker.matmul.experiment`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from worker.matmul.codes import CODES

__all__ = ["register", "run", "emulations_from_args"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``matmul`` sub-command."""
    p = subparsers.add_parser(
        "matmul", help="run a coded matrix multiplication on executors through the store",
        description="Coded A@B (or A@x) on real executors that talk only through the store: "
                    "uncoded, replication, mds, poly, matdot (inner-dimension split), or "
                    "secure, secure-matdot and gasp (T-private over GF(p)). "
                    "With --plan, an offload policy places the subtasks and the report "
                    "sets predicted beside measured completion and energy.")
    p.add_argument("--code", choices=CODES, default="mds")
    p.add_argument("--n", type=int, default=None, help="subtasks / executors (default 8)")
    p.add_argument("--k", type=int, default=None,
                   help="row blocks of A (uncoded, replication: r=n/k copies, mds: any k of "
                        "n), or inner-dimension blocks (matdot: any 2k-1, secure-matdot: "
                        "any 2k+2t-1; default 2)")
    p.add_argument("--ka", type=int, default=1, help="row blocks of A (poly, secure, gasp)")
    p.add_argument("--kb", type=int, default=1, help="column blocks of B (poly, secure, gasp)")
    p.add_argument("--t", type=int, default=1, help="colluding workers tolerated (secure, secure-matdot, gasp)")
    p.add_argument("--p", type=int, default=None,
                   help="prime for exact GF(p) arithmetic (private codes default 2^31-1)")
    p.add_argument("--field", choices=("real", "gfp"), default="real",
                   help="random float64 inputs, or integers in [0, p) for an exact product")
    p.add_argument("--frac-bits", type=int, default=None,
                   help="private codes with real inputs: quantizer fractional bits (default: "
                        "safest maximum)")
    p.add_argument("--size", default="512",
                   help="M (M x M times M x M), MxK2 (A times a vector) or MxK2xN2")
    p.add_argument("--a", default=None, metavar="FILE.npy", help="left operand (.npy)")
    p.add_argument("--b", default=None, metavar="FILE.npy", help="right operand (.npy)")
    p.add_argument("--store", default="runs/store", help="store URL or path")
    p.add_argument("--launcher", choices=("local", "ray", "thread"), default="local")
    p.add_argument("--ray-address", dest="ray_address",
                   help="an existing Ray cluster (default: a local one)")
    p.add_argument("--straggle", action="append", default=[], metavar="RULE",
                   help="e.g. worker=1,delay=2  |  shiftexp:worker=2,shift=0.5,rate=2  |  "
                        "dead:worker=3  |  crash:worker=4,prob=0.5 (repeatable)")
    p.add_argument("--speeds", default=None,
                   help="comma-separated speed factors in (0, 1], one per executor")
    p.add_argument("--corrupt", type=int, action="append", default=[], metavar="WORKER",
                   help="this executor uploads a corrupted result (repeatable)")
    p.add_argument("--no-encrypt", action="store_true", help="store objects in the clear")
    p.add_argument("--key-file", default=None,
                   help="key file (default: KOFN_KEY/KOFN_KEY_FILE, else a one-off key)")
    p.add_argument("--no-check", action="store_true", help="skip the direct-product check")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--job", default="", help="job id (default: a fresh one)")
    p.add_argument("--report", default=None, help="report path (default runs/matmul/JOB.json)")
    p.add_argument("--plan", default=None, metavar="POLICY[,POLICY...]",
                   help="offload policies to place the subtasks: igp, rop, aop, lcp, exact")
    p.add_argument("--instance", default=None, metavar="FILE.toml",
                   help="offload instance (default: the seeded generator's instance 0)")
    p.add_argument("--runs", type=int, default=None,
                   help="--plan: runs per policy (default 300: a Wilson 95%% interval of "
                        "about +-2 points at a 98%% hit rate)")
    p.add_argument("--tolerance", type=float, default=None, metavar="SECONDS",
                   help="--plan: wall seconds a K-th result may arrive after T and still "
                        "count as in time (store round trip; default 0.01)")
    p.add_argument("--time-scale", type=float, default=0.5,
                   help="--plan: wall seconds per model second")
    # The committed reference (results/matmul/plan.*) is regenerated only by naming it.
    p.add_argument("--out", default="results/tmp/matmul",
                   help="--plan: report directory (default results/tmp/matmul; the committed "
                        "reference is results/matmul)")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=run)


def emulations_from_args(args: argparse.Namespace, n: int) -> list:
    """Per-executor :class:`Emulation` from ``--straggle``, ``--speeds`` and ``--corrupt``."""
    from worker.matmul.executor import Emulation
    from worker.straggle import parse_straggle

    rules = parse_straggle(";".join(args.straggle)) if args.straggle else ()
    speeds = [1.0] * n
    if args.speeds:
        try:
            speeds = [float(s) for s in args.speeds.split(",")]
        except ValueError:
            raise ValueError(f"Argument 'speeds' must be comma-separated numbers, not "
                             f"{args.speeds!r}.") from None
        if len(speeds) != n:
            raise ValueError(f"Argument 'speeds' must list n={n} factors, not {len(speeds)}.")
    for w in list(args.corrupt) + [r.worker for r in rules if r.worker is not None]:
        if not 0 <= w < n:
            raise ValueError(f"Argument 'worker' must be at most n-1={n - 1}, not {w}.")
    out = []
    for i in range(n):
        kw: dict = {"speed": speeds[i], "seed": args.seed * 1000 + i,
                    "corrupt": i in args.corrupt}
        for r in (r for r in rules if r.applies_to(i)):
            if r.kind == "fixed":
                kw["delay"] = kw.get("delay", 0.0) + r.delay
            elif r.kind == "shiftexp":
                kw["shift"], kw["rate"] = r.shift, r.rate
            elif r.kind == "dead":
                kw["dead"] = True
            else:
                kw["drop"] = r.prob
        out.append(Emulation(**kw))
    return out


def _keyring(args: argparse.Namespace):
    import os

    from exchange.crypto import Keyring, new_key

    if args.no_encrypt:
        return None
    if args.key_file:
        return Keyring.from_file(args.key_file)
    if os.environ.get("KOFN_KEY") or os.environ.get("KOFN_KEY_FILE"):
        return Keyring.from_env()
    return Keyring([new_key()])


def _load(path: str | None):
    if path is None:
        return None
    return np.load(path, allow_pickle=False)  # never unpickle


def run(args: argparse.Namespace) -> int:
    """Run the job (or the ``--plan`` experiment) and print a summary."""
    from exchange.crypto import EncryptedStore
    from exchange.stores.url import open_store

    ring = _keyring(args)
    raw = open_store(args.store)
    store = raw if ring is None else EncryptedStore(raw, ring)
    if args.plan:
        return _run_plan(args, store, ring)
    return _run_job(args, store, ring)


def _run_job(args, store, ring) -> int:
    from worker.matmul.jobs import (
        LocalPool,
        MatmulJob,
        RayPool,
        ThreadPool,
        new_job_id,
        parse_size,
        run_master,
    )

    n = 8 if args.n is None else args.n
    A, B = _load(args.a), _load(args.b)
    if (A is None) != (B is None):
        raise ValueError("Arguments 'a' and 'b' must be given together.")
    if A is not None:
        if A.ndim != 2 or B.ndim not in (1, 2) or A.shape[1] != B.shape[0]:
            raise ValueError(f"Arguments 'a' and 'b' have shapes {A.shape} and {B.shape}, "
                             "which do not multiply.")
        size = (A.shape[0], A.shape[1], 0 if B.ndim == 1 else B.shape[1])
    else:
        size = parse_size(args.size)
    spec = MatmulJob(code=args.code, n=n, k=args.k, ka=args.ka, kb=args.kb, t=args.t,
                     size=size, p=args.p, field=args.field, frac_bits=args.frac_bits,
                     seed=args.seed, check=not args.no_check, timeout=args.timeout,
                     job=args.job or new_job_id())
    code = spec.build_code()  # all parameter errors surface before anything starts
    if A is None:
        from worker.matmul.jobs import make_inputs

        A, B = make_inputs(spec, code.p)
    emus = emulations_from_args(args, code.n)
    if args.launcher == "thread":
        pool = ThreadPool(store, emus)
    elif args.launcher == "local":
        pool = LocalPool(store, emus, url=args.store, keyring=ring, verbose=args.verbose)
    else:
        pool = RayPool(store, emus, url=args.store, keyring=ring, address=args.ray_address)
    log = (lambda s: print(s, file=sys.stderr)) if args.verbose else (lambda s: None)
    with pool:
        res = run_master(store, spec, A, B, code=code, log=log)
    report = res.report(code, spec)
    report["launcher"] = args.launcher
    report["encrypted"] = ring is not None
    path = Path(args.report or f"runs/matmul/{res.job}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    t = res.timings
    chk = "" if res.check is None else (
        f", check {'ok' if res.check['ok'] else 'FAILED'} (rel err {res.check['rel_err']:.2e})")
    print(f"job {res.job}: {code.name} n={code.n} needed={code.needed}, decoded from "
          f"{res.used} in {t['time_to_result_s']:.3f} s (encode {t['encode_s']:.3f} s, "
          f"upload {t['upload_s']:.3f} s){chk}; erasures {sorted(res.erasures)}; "
          f"report {path}")
    return 0 if res.check is None or res.check["ok"] else 1


def _run_plan(args, store, ring) -> int:
    from offload.generator import generate, load_instance
    from offload.policies import get_policy
    from worker.matmul.experiment import (
        DEFAULT_TOLERANCE_S,
        make_pool,
        run_experiment,
        write_report,
    )
    from worker.matmul.jobs import parse_size

    if args.code != "mds":
        raise ValueError(f"Argument 'code' must be 'mds' with --plan (the offload model "
                         f"places MDS-coded subtasks), not {args.code!r}.")
    inst = load_instance(args.instance) if args.instance else generate(seed=0)
    for name, want in (("n", inst.N), ("k", inst.K)):
        got = getattr(args, name)
        if got is not None and got != want:
            raise ValueError(f"Argument {name!r} must match the instance's {name.upper()}="
                             f"{want}, not {got}.")
    policies = [s.strip() for s in args.plan.split(",") if s.strip()]
    for name in policies:
        get_policy(name)  # unknown names fail before anything runs
    _, d, q = parse_size(args.size) if args.size != "512" else (0, 64, 32)
    runs_per = 300 if args.runs is None else args.runs
    tol = DEFAULT_TOLERANCE_S if args.tolerance is None else args.tolerance
    pool = make_pool(args.launcher, store, inst.N, url=args.store, keyring=ring,
                     address=args.ray_address, verbose=args.verbose)
    summaries, runs, executors = run_experiment(
        store, inst, policies, runs=runs_per, time_scale=args.time_scale, seed=args.seed,
        size=(d, max(q, 1)), pool=pool, tolerance_s=tol,
        log=(lambda s: print(s, file=sys.stderr)) if args.verbose else (lambda s: None))
    path = write_report(args.out, inst, summaries, runs, time_scale=args.time_scale,
                        tolerance_s=tol, seed=args.seed, executors=executors,
                        command="kofn " + " ".join(sys.argv[1:]))
    for s in summaries:
        print(f"{s.policy}: m={s.m}, {len(s.workers)} workers, energy {s.energy_J:.4f} J, "
              f"predicted P(hit) {s.predicted_success:.3f}, measured {s.measured_hit_rate:.3f} "
              f"[{s.ci_low:.3f}, {s.ci_high:.3f}] over {s.runs} runs (prediction "
              f"{'inside' if s.predicted_in_ci else 'OUTSIDE'} the Wilson 95% interval); "
              f"completion predicted {s.predicted_mean_completion:.3f} s, measured "
              f"{s.measured_mean_completion:.3f} s (model seconds)")
    print(f"report {path}")
    return 0
