"""Typed protocol errors: the error codes of SPEC.md section 5 and their exceptions.

The codes are wire data (strings a client in any language matches on); the exception
classes carry one code each so that server code can ``raise BadRequest(...)`` and the
transport turns it into an error reply, and the clients turn an error reply back into the
same exception type (``except UnknownTarget`` works on both sides).
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
    """A typed protocol error: one subclass per code of :data:`ERROR_CODES`.

    Raised by the server side (the transport turns it into an error reply) and by the
    clients, which turn an error reply back into the same class (:func:`error_from_wire`)
    with the request's id in ``request_id``. ``message`` is the server's own text."""

    code: str = "internal"

    def __init__(self, message: str, request_id: object = None) -> None:
        super().__init__(message if request_id is None else f"[{self.code}] {message}")
        self.message = message
        self.request_id = request_id

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(ProtocolError):
    """Malformed or invalid: not JSON, wrong types, unknown type or preset, a limit."""

    code = "bad_request"


class UnsupportedVersion(ProtocolError):
    code = "unsupported_version"


class Unauthorized(ProtocolError):
    code = "unauthorized"


class Overloaded(ProtocolError):
    """The server's queue is full: retry later."""

    code = "overloaded"


class RequestTimeout(ProtocolError):
    """The request did not finish within its deadline (a trusted render at the hard
    deadline, or a request unanswered after ``request_timeout``)."""

    code = "timeout"


class WorkerLost(ProtocolError):
    """The worker running a trusted render died on each of its attempts."""

    code = "worker_lost"


class UnknownTarget(ProtocolError):
    """``target_id`` is not in the server's cache: send a reset or a full target spec."""

    code = "unknown_target"


class RenderError(ProtocolError):
    """A trusted render failed."""

    code = "render_error"


class InternalError(ProtocolError):
    """A bug in the server; the message says what."""

    code = "internal"


ERROR_TYPES: Mapping[str, type[ProtocolError]] = MappingProxyType(
    {
        cls.code: cls
        for cls in (
            BadRequest, UnsupportedVersion, Unauthorized, Overloaded, RequestTimeout,
            WorkerLost, UnknownTarget, RenderError, InternalError,
        )
    }
)  # fmt: skip
assert tuple(ERROR_TYPES) == ERROR_CODES


def error_from_wire(error: Mapping[str, object], request_id: object = None) -> ProtocolError:
    """The typed exception of an error reply's ``{"code", "message"}``. A code from a newer
    server than this client keeps its name in ``code``, as an :class:`InternalError`."""
    code, message = str(error.get("code", "internal")), str(error.get("message", ""))
    exc = ERROR_TYPES.get(code, InternalError)(message, request_id)
    exc.code = code
    return exc


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
