"""Coded matrix multiplication on real workers through the store.

The master (:mod:`worker.matmul.jobs`) encodes ``A @ B`` with one of the codes in
:mod:`worker.matmul.codes`, uploads the subtasks, and decodes from the first decodable set
of results that generic executors (:mod:`worker.matmul.executor`) upload. With an offload
instance, :mod:`worker.matmul.experiment` places the subtasks with an offload policy and
compares the planner's predictions with measured runs. See ``docs/matmul.md``.
"""

from worker.matmul.codes import CODES, DEFAULT_PRIME, Encoded, MatmulCode, make_code
from worker.matmul.executor import Emulation, Manifest, TaskStatus, run_task, serve
from worker.matmul.jobs import (
    ExecutorPool,
    LocalPool,
    MatmulJob,
    MatmulResult,
    RayPool,
    ThreadPool,
    make_inputs,
    parse_size,
    run_master,
)

__all__ = [
    "CODES", "DEFAULT_PRIME", "Emulation", "Encoded", "ExecutorPool", "LocalPool", "Manifest",
    "MatmulCode", "MatmulJob", "MatmulResult", "RayPool", "TaskStatus", "ThreadPool",
    "make_code", "make_inputs", "parse_size", "run_master", "run_task", "serve",
]
