"""``derender keys``: make a CURVE key pair for remote serving and remote workers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..protocol.keys import create_keypair


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create a CURVE key pair for remote serving")
    p.add_argument("--out", type=Path, required=True, help="directory for the key files")
    p.add_argument("--name", default="server", help="file stem: NAME.key, NAME.key_secret")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        public, secret = create_keypair(args.out, args.name)
    except (FileExistsError, OSError) as exc:
        print(f"derender keys: {exc}", file=sys.stderr)
        return 2
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return 0
