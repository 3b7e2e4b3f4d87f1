"""The worker side's registries: launchers by name (and the pattern for more).

``--launcher NAME`` looks ``NAME`` up in :data:`LAUNCHERS`: ``"module:factory"``,
imported when a job first asks for it, where ``factory(cfg, *, log_dir, verbose)``
returns a :class:`~worker.launchers.Launcher`. A new launcher is one module plus one
``LAUNCHERS.register(...)`` call; the CLI's choices and the config's check read the
registry. This module imports nothing heavy, so the config can consult it.
"""

from __future__ import annotations

from exchange.registry import Registry

__all__ = ["LAUNCHERS"]

#: Where workers run: local subprocesses (the default), Ray tasks, AWS Lambda invocations.
LAUNCHERS = Registry("launcher", {
    "local": "worker.launchers.local:from_config",
    "ray": "worker.launchers.ray_launcher:from_config",
    "lambda": "worker.launchers.aws_lambda:from_config",
})
