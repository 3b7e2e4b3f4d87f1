"""The driver of tests/worker/test_ray_cluster.py, run in a process of its own.

``python -m tests.worker.ray_cluster_driver ADDRESS NODE_IP WORKDIR`` connects to the
cluster as :class:`worker.launchers.ray_launcher.RayLauncher` does (the job's
``runtime_env`` ships kofn's code), probes the nodes, runs a 2-worker training job and a
4-executor matmul job, and prints one JSON object with what happened. A process of its
own keeps the cluster's Ray settings (token authentication) apart from the test
session's, where other tests start local clusters.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(address: str, node_ip: str, workdir: str) -> dict:
    import ray

    from exchange.stores.local import LocalStore
    from worker.cli import main as kofn
    from worker.config import RunConfig
    from worker.launchers.ray_launcher import _REPO, RayLauncher, check_nodes, runtime_env
    from worker.matmul import jobs
    from worker.runner import WorkerSpec
    from worker.trigger import checkpoint_key, trigger

    work = Path(workdir)
    # On one machine the driver names its node: Ray would take 127.0.0.1 for this
    # machine's outside address. The rest is what RayLauncher(address=...) does.
    ray.init(address=address, _node_ip_address=node_ip, runtime_env=runtime_env(),
             log_to_driver=False)
    out: dict = {"nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]),
                 "repo": str(_REPO), "probes": check_nodes()}

    url = f"file://{work / 'store'}"
    store = LocalStore(work / "store")
    cfg = RunConfig(job="two", store=url, workers=2, mode="mds", k=2, rounds=1, model="small_cnn",
                    min_size=64, max_size=64, image_size=64, synth_images=8, local_iters=1,
                    batch_size=2, encrypt=False, grace=0.3, round_timeout=300.0)
    trigger(cfg, store)
    # one CPU per node and one per task: the two workers cannot share a node
    launcher = RayLauncher(address=address, num_cpus=1, max_restarts=0)
    try:
        launcher.start([WorkerSpec(store=url, job="two", worker=i, encrypt=False) for i in range(2)])
        report = launcher.wait(timeout=600)
    finally:
        launcher.stop()
    out["train"] = {"exits": {str(k): v for k, v in report.exits.items()},
                    "nodes": {str(k): v for k, v in launcher.nodes.items()},
                    "checkpoint": store.exists(checkpoint_key("two", 1))}

    seen: list[list] = []
    real_join = jobs.RayPool._join

    def join(self, timeout):  # record where the executors ran, then stop as usual
        real_join(self, timeout)
        seen.append(list(self.nodes))

    jobs.RayPool._join = join
    path = work / "mm.json"
    rc = kofn(["matmul", "--code", "mds", "--n", "4", "--k", "2", "--size", "64x32x16",
               "--launcher", "ray", "--ray-address", address, "--store", f"file://{work / 'mm'}",
               "--no-encrypt", "--report", str(path)])
    out["matmul"] = {"rc": rc, "report": json.loads(path.read_text()) if path.exists() else None,
                     "nodes": seen[0] if seen else []}
    return out


if __name__ == "__main__":
    result = main(*sys.argv[1:4])
    print("RESULT " + json.dumps(result, default=str), flush=True)
    # Everything the test checks is in RESULT. Ray's own driver teardown at interpreter
    # exit has intermittently failed on these machines after all the work was done (exit
    # status 1, a libc backtrace on stderr, 2 of 4 fresh-clone runs on 2026-12-02; never
    # when the test runs alone), so the driver leaves without it; the fixture stops the
    # nodes. See the test's log file for the driver's full output.
    sys.stderr.flush()
    os._exit(0)
