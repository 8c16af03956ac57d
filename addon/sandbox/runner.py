"""Run one agent script in the sandbox and classify what happened.

The script runs in this process against the current Blender scene; the caller
(``addon.service``) resets the frame before and after and checks it for tampering. A
literal DSL program (:mod:`.literal`) is not run as Python: its calls are made here, with
its values, and the frame stays :attr:`~.frame.BuiltFrame.intact`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import CodeType, TracebackType

from ..frame import BuiltFrame
from . import errors
from .dsl import dsl_namespace
from .errors import SandboxAbort
from .guards import Guards, std_modules
from .limits import ScriptLimits
from .lines import LineProgram
from .literal import LiteralProgram
from .policy import CompileFailure, compile_script
from .proxy import make_bpy
from .rewrite import AGENT_FILENAME
from .session import ScriptSession


@dataclass(frozen=True)
class RunOutcome:
    """What the script did: one of ``protocol.errors.OUTCOMES`` (never frame_tampered/render_error
    here: those are decided after the script by the service)."""

    outcome: str
    message: str
    line: int | None
    stdout: str
    # (wall, CPU) seconds spent compiling, part of the run: the step reports it apart
    compile_s: tuple[float, float] = (0.0, 0.0)

    @property
    def recycle(self) -> bool:
        return self.outcome in errors.RECYCLE_OUTCOMES


def _agent_line(tb: TracebackType | None) -> int | None:
    """The line of the innermost frame that belongs to the agent script."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == AGENT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


MAX_MESSAGE_CHARS = 2000  # an exception's message can be as long as the script makes it


def _failure(
    outcome: str, exc: BaseException, line: int | None = None
) -> tuple[str, str, int | None]:
    """(outcome, "Type: message", agent line): the agent never sees a derender traceback.
    ``line``: where a literal program was (its calls run no agent frame)."""
    message = f"{type(exc).__name__}: {exc}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + f" [... {len(message) - MAX_MESSAGE_CHARS} more]"
    agent_line = _agent_line(exc.__traceback__)
    return outcome, message, line if agent_line is None else agent_line


_Result = tuple[RunOutcome, ScriptSession]


def _exec_agent_code(
    code: CodeType | LineProgram, session: ScriptSession, frame: BuiltFrame
) -> None:
    """Run compiled agent code (a line program: its lines in order, in one namespace)
    under the guards; the frame is no longer known intact (even if the code raises)."""
    guards = Guards(session, {"bpy": make_bpy(session), **std_modules(session)})
    namespace = guards.globals(dsl_namespace(session))
    try:
        for line in code.codes if isinstance(code, LineProgram) else (code,):
            exec(line, namespace)
    finally:
        # Drop the script's globals now: a finalizer that runs from here on (a suspended
        # generator's ``finally``) finds no guards and stops at its first guarded
        # operation with a NameError instead of running during the render.
        namespace.clear()
        frame.distrust()


def run_script(
    script: str, frame: BuiltFrame, limits: ScriptLimits | None = None, seed: int = 0
) -> _Result:
    """Compile and run ``script`` in ``frame``; never raises for anything the script does."""
    limits = limits or ScriptLimits()
    session = ScriptSession(frame, limits, seed)
    wall, cpu = time.perf_counter(), time.process_time()
    compile_failure: tuple[str, str, int | None] | None = None
    try:
        code = compile_script(script, limits.max_script_bytes)
    except CompileFailure as exc:
        compile_failure = (exc.outcome, exc.message, exc.line)
    except ValueError as exc:
        compile_failure = (errors.RESOURCE_LIMIT, str(exc), None)
    compile_s = (time.perf_counter() - wall, time.process_time() - cpu)

    def done(outcome: str, message: str = "", line: int | None = None) -> _Result:
        return RunOutcome(outcome, message, line, session.output.text(), compile_s), session

    if compile_failure is not None:
        return done(*compile_failure)

    failure: tuple[str, str, int | None] | None = None
    calling = None  # the line of the literal call being made
    try:
        if isinstance(code, LiteralProgram):
            functions = dsl_namespace(session)
            for call in code.calls:
                calling = call.line
                functions[call.function](*call.args, **dict(call.keywords))
        else:
            _exec_agent_code(code, session, frame)
    except SandboxAbort as exc:
        failure = _failure(exc.outcome, exc, calling)
    except MemoryError as exc:
        failure = _failure(errors.RESOURCE_LIMIT, exc, calling)
    except Exception as exc:
        failure = _failure(errors.RUNTIME_ERROR, exc, calling)
    fatal = session.budget.fatal
    if fatal is not None and (failure is None or failure[0] == errors.RUNTIME_ERROR):
        # The abort was swallowed (``finally: return``) or replaced: it still decides.
        failure = _failure(fatal.outcome, fatal)
    if failure is None:
        return done(errors.OK)
    return done(*failure)
