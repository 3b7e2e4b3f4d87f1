"""The ``kofn`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; that function
adds a parser and sets ``func`` to a callable taking the parsed namespace and returning an
exit code. Domain and input errors become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from coding.errors import KofnError

# Subcommand modules, in the order they appear in ``kofn --help``. A module that is not
# present yet (a later feature) is skipped, so partial installs still work.
SUBCOMMANDS = (
    "worker.commands.keygen",
    "worker.commands.data",
    "worker.commands.train",
    "worker.commands.matmul",
    "worker.commands.offload",
    "worker.commands.aws_lambda",
    "worker.commands.bench",
)

# Errors a user can cause by bad input; shown as one line, never as a traceback.
USER_ERRORS = (KofnError, ValueError, TypeError, FileNotFoundError, FileExistsError,
               PermissionError, KeyError, OSError)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kofn")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kofn",
        description="Coded-computing parameter exchange: any K of N finishes the round.",
    )
    parser.add_argument("--version", action="version", version=f"kofn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("kofn: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"kofn: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
