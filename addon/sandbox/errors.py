"""Outcome names and the exceptions that abort an agent script.

The list of every outcome (and its numeric code) is ``protocol.errors.OUTCOMES``: one list,
importable without bpy; the names here are the ones the sandbox itself produces.

Every abort derives from ``BaseException`` (not ``Exception``) and the policy rewrites
every ``except`` clause to catch ``Exception`` subclasses only, so an agent script can
never swallow a timeout or a violation. Aborts are also sticky (see ``limits.Budget``).
"""

from __future__ import annotations

OK = "ok"
SYNTAX_ERROR = "syntax_error"
RUNTIME_ERROR = "runtime_error"
SANDBOX_VIOLATION = "sandbox_violation"
TIMEOUT = "timeout"
RESOURCE_LIMIT = "resource_limit"
FRAME_TAMPERED = "frame_tampered"
RENDER_ERROR = "render_error"

# Outcomes after which the worker process should be replaced: the script tried to leave
# the sandbox or the frame, or Blender itself failed; in-process state is not trusted.
RECYCLE_OUTCOMES: frozenset[str] = frozenset({SANDBOX_VIOLATION, FRAME_TAMPERED, RENDER_ERROR})


class SandboxAbort(BaseException):
    """Stops the agent script; ``outcome`` names the result it produces."""

    outcome = SANDBOX_VIOLATION


class SandboxViolation(SandboxAbort):
    """The script reached for something outside the allowlist (module, attribute, op)."""

    outcome = SANDBOX_VIOLATION


class FrameLocked(SandboxViolation):
    """The script reached for the locked frame: camera, lights, ground, world, render."""


class ResourceLimit(SandboxAbort):
    """A budget (objects, vertices, integer size, sequence length, script size) ran out."""

    outcome = RESOURCE_LIMIT


class Timeout(SandboxAbort):
    """The per-request deadline or the tick budget passed."""

    outcome = TIMEOUT
