"""How a worker host reaches a farm, and the checks on its name and keys.

A host (:mod:`.remote`) holds the CURVE keys; its sandboxed workers must never see them.
:class:`FarmLink` is the farm's address and the keys, :func:`check_key_hidden` refuses a
key file that lies where the OS sandbox binds into every worker, :func:`host_name` the
name a host's worker identities begin with.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq

from ..protocol.keys import KeyPair, load_keys
from .os_sandbox import runtime_tree

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class BadHostName(ValueError):
    """A worker host name that cannot prefix worker identities (it is shown in status)."""


class KeysVisibleToWorkers(ValueError):
    """A key file lies in a tree the OS sandbox binds into every worker."""


class NoSecretKey(ValueError):
    """The key file given as this host's keys holds a public key only."""


@dataclass(frozen=True)
class FarmLink:
    """How a host reaches a farm: its ``remote_backend`` address and the CURVE keys."""

    address: str
    server_key: bytes  # the farm's public key
    keys: KeyPair  # this host's pair; its public key is in the farm's curve_clients

    @classmethod
    def load(cls, address: str, server_key: str | Path, keys: str | Path) -> FarmLink:
        """From ``farm.key`` and this host's ``.key_secret`` (``derender keys``)."""
        pair = load_keys(keys)
        if pair.secret is None:
            raise NoSecretKey(f"{str(keys)!r} holds no secret key (pass the .key_secret file)")
        return cls(address, load_keys(server_key).public, pair)

    def socket(self, ctx: zmq.Context, identity: str) -> zmq.Socket:
        """A CURVE DEALER for the farm with ``identity``, not connected yet (so that a
        monitor attached first sees the first handshake); ZeroMQ reconnects it."""
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity.encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = self.server_key
        sock.curve_publickey = self.keys.public
        sock.curve_secretkey = self.keys.secret
        return sock


def host_name(name: str | None = None) -> str:
    """``name`` (default: this machine's hostname) checked to prefix worker identities."""
    name = name or socket.gethostname().split(".")[0]
    if not _NAME.fullmatch(name):
        raise BadHostName(
            f"worker host name {name!r} must be 1-63 of letters, digits, '.', '_', '-' "
            "(starting with a letter or digit); pass --name"
        )
    return name


def check_key_hidden(secret_file: str | Path, blender: str | None) -> None:
    """KeysVisibleToWorkers if the host's secret key file lies in a tree the OS sandbox
    binds into its workers (the Python installation, site-packages, derender, /usr)."""
    real = Path(secret_file).resolve()
    for tree in (Path("/usr"), *runtime_tree(blender)):
        if real.is_relative_to(tree.resolve()):
            raise KeysVisibleToWorkers(
                f"key file {str(secret_file)!r} is inside {str(tree)!r}, which every "
                "sandboxed worker can read: keep the keys outside the Python installation, "
                "its site-packages, the derender sources and /usr"
            )
