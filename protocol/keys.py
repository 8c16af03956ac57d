"""CURVE key pairs (ZeroMQ's ``zmq.auth`` certificate files).

A pair is two files: ``NAME.key`` (public, safe to copy to the other side) and
``NAME.key_secret`` (public + secret, stays where it was made). A server accepts the
clients whose ``.key`` files are in its clients directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyPair:
    public: bytes
    secret: bytes | None


def create_keypair(out_dir: str | Path, name: str = "server") -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` into ``out_dir``; refuse to overwrite."""
    import zmq.auth

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"key file {str(path)!r} exists; not overwriting it")
    made_public, made_secret = zmq.auth.create_certificates(str(out), name)
    Path(made_secret).chmod(0o600)
    return Path(made_public), Path(made_secret)


def load_keys(path: str | Path) -> KeyPair:
    """A public key file, or a secret file (which holds both keys)."""
    import zmq.auth

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"CURVE key file {str(p)!r} does not exist")
    try:
        public, secret = zmq.auth.load_certificate(str(p))
    except (ValueError, OSError) as exc:
        raise ValueError(f"{str(p)!r} is not a CURVE certificate file: {exc}") from exc
    return KeyPair(public, secret)
