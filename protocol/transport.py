"""ZeroMQ transport pieces shared by every server of the protocol (the add-on's server and
the farm broker): the loopback rule, CURVE server setup, and the ROUTER envelope."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq

from .keys import load_keys


class InsecureBind(ValueError):
    """A non-loopback address without CURVE keys: the server refuses to start."""


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    if parts.scheme != "tcp":
        return False
    host = parts.netloc.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a hostname: not provably loopback
        return False


@dataclass(frozen=True)
class CurveConfig:
    """The server's secret key file and the directory of accepted clients' public keys."""

    secret_file: Path
    clients_dir: Path

    def __post_init__(self) -> None:
        if not Path(self.clients_dir).is_dir():
            raise FileNotFoundError(
                f"CURVE clients directory {str(self.clients_dir)!r} does not exist"
            )


def check_addresses(addresses: Sequence[str], curve: CurveConfig | None) -> None:
    """InsecureBind if an address is not loopback and there are no CURVE keys."""
    exposed = [a for a in addresses if not is_loopback(a)]
    if exposed and curve is None:
        raise InsecureBind(
            f"refusing to bind {exposed} without CURVE keys: only loopback addresses may "
            "be served openly (create keys with `derender keys --out DIR`)"
        )


def start_authenticator(ctx: zmq.Context, curve: CurveConfig) -> Any:
    """A running ZAP authenticator that admits the clients whose keys are in the directory."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(curve.clients_dir))
    return auth


def make_curve_server(sock: zmq.Socket, curve: CurveConfig) -> None:
    """Endpoints bound from now on require CURVE (libzmq copies security options into an
    endpoint at bind time, so endpoints bound earlier stay plain)."""
    keys = load_keys(curve.secret_file)
    if keys.secret is None:
        raise ValueError(f"{str(curve.secret_file)!r} holds no secret key")
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(routing envelope, message body) of a ROUTER frame list.

    [identity, b"", body...] from REQ or a DEALER with delimiter; [identity, body...] else.
    """
    if len(frames) > 1 and frames[1] == b"":
        return frames[:2], frames[2:]
    return frames[:1], frames[1:]


def drain(sock: zmq.Socket, handle: Callable[..., object], most: int = 1000) -> None:
    """Hand up to ``most`` waiting messages of ``sock`` to ``handle``, without blocking;
    stop early when ``sock`` is empty or ``handle`` closed it."""
    for _ in range(most):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        handle(frames)
        if sock.closed:
            return
