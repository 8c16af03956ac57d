"""Typed protocol errors: the error codes of SPEC.md section 5 and their exceptions.

The codes are wire data (strings a client in any language matches on); the exception
classes carry one code each so that server code can ``raise BadRequest(...)`` and the
transport turns it into an error reply, and the client can turn an error reply back into
the same exception type.
"""

from __future__ import annotations

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
