"""``kofn keygen``: create (or rotate) an AES-256 key file for EncryptedStore."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exchange.crypto import Keyring, new_key, write_key_file

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``keygen`` sub-command."""
    p = subparsers.add_parser(
        "keygen",
        help="write a new encryption key file (mode 0600)",
        description="Write a random 32-byte AES-256-GCM key with its key id to a key file "
                    "(mode 0600). Use it with KOFN_KEY_FILE=FILE. With --rotate, add a new "
                    "primary key to an existing file and keep the old keys for decryption.",
    )
    p.add_argument("--out", default="kofn.key", metavar="FILE",
                   help="key file to write (default: kofn.key)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing key file (its objects become unreadable)")
    p.add_argument("--rotate", action="store_true",
                   help="add a new primary key to the existing FILE, keeping the old ones")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Create or rotate the key file; print its path and the new key id."""
    if args.rotate:
        ring = Keyring.from_file(args.out).rotated()
        write_key_file(args.out, ring, force=True)
    else:
        ring = Keyring([new_key()])
        Path(args.out).expanduser().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_key_file(args.out, ring, force=args.force)
    print(f"wrote {args.out} (key id {ring.primary.hex()}, {len(ring)} key(s)); "
          f"use it with KOFN_KEY_FILE={args.out}", file=sys.stdout)
    return 0
