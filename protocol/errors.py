"""Typed protocol errors: the error codes of SPEC.md section 5 and their exceptions.

The codes are wire data (strings a client in any language matches on); the exception
classes carry one code each so that server code can ``raise BadRequest(...)`` and the
transport turns it into an error reply, and the client can turn an error reply back into
the same exception type.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

ERROR_CODES: tuple[str, ...] = (
    "bad_request",
    "unsupported_version",
    "unauthorized",
    "overloaded",
    "timeout",
    "worker_lost",
    "unknown_target",
    "render_error",
    "internal",
)

# The sandbox's outcomes (a step's ``outcome``); a failed script is a result, not an error.
OUTCOMES: tuple[str, ...] = (
    "ok",
    "syntax_error",
    "runtime_error",
    "sandbox_violation",
    "timeout",
    "resource_limit",
    "frame_tampered",
    "render_error",
    "poisoned",  # farm only: the script's worker died on every attempt (SPEC.md section 5)
)

# The numeric outcome code trainers log next to the reward (frameworks log numbers, not
# strings): the position in OUTCOMES. Append new outcomes at the end so codes never change.
OUTCOME_CODES: Mapping[str, int] = MappingProxyType({name: i for i, name in enumerate(OUTCOMES)})


def outcome_code(outcome: str) -> int:
    """The numeric code of an outcome name; ValueError names an unknown one."""
    try:
        return OUTCOME_CODES[outcome]
    except KeyError:
        raise ValueError(f"unknown outcome {outcome!r}; known: {OUTCOMES}") from None


# Codes a client may retry without changing the request.
RETRYABLE: frozenset[str] = frozenset({"overloaded", "worker_lost"})


class ProtocolError(Exception):
    """A typed protocol error; ``code`` is one of :data:`ERROR_CODES`."""

    code: str = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            if code not in ERROR_CODES:
                raise ValueError(f"unknown error code {code!r}; expected one of {ERROR_CODES}")
            self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(ProtocolError):
    code = "bad_request"


class UnsupportedVersion(ProtocolError):
    code = "unsupported_version"


class Overloaded(ProtocolError):
    code = "overloaded"


class UnknownTarget(ProtocolError):
    code = "unknown_target"


class RenderError(ProtocolError):
    code = "render_error"


class ServerError(ProtocolError):
    """An error reply received by a client; ``code`` is the server's code."""

    def __init__(self, message: str, code: str = "internal", request_id: object = None) -> None:
        super().__init__(f"[{code}] {message}", code if code in ERROR_CODES else "internal")
        self.code = code  # keep a code from a newer server verbatim
        self.server_message = message
        self.request_id = request_id


class ClientTimeout(TimeoutError):
    """No reply within the client's timeout (after its retries, for idempotent calls)."""


class ServerUnreachable(ClientTimeout):
    """Nothing answered a liveness ping at the address; the message says how to start a farm."""

    def __init__(self, address: str, waited: float) -> None:
        super().__init__(
            f"nothing answers at {address} (no reply to ping within {waited:g} s). Start a farm "
            f"there with `derender farm --bind {address}` (or one worker with `derender serve "
            f"--address {address}`), or point DERENDER_ADDRESS at a running one"
        )
        self.address = address
