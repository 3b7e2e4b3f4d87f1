"""The serverless training paper's figures and table: ``python -m benchmarks.paper``.

See :mod:`benchmarks.paper.__main__` for the command, :mod:`benchmarks.paper.fleet` for
how a fleet of workers is run and timed, and ``results/paper/paper.md`` for a full run.
"""
