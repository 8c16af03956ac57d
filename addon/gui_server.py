"""The add-on's socket server: a local farm bound to the preference address.

Remote scripts never run in the Blender GUI process: "Start server" starts a farm of one
step worker and one target worker (``farm.local.LocalFarm``; each worker a headless
Blender in the OS sandbox), bound to the address in the add-on preferences. The farm
publishes every reply it sends on a monitor socket; :meth:`GuiServer.poll` (from a
``bpy.app.timers`` callback) reads them so the panel shows the last target and the last
script's render, outcome and reward, and rebuilds the script's read-back scene in the
viewport with the trusted builder.

Where the OS sandbox cannot run (no bubblewrap: macOS, Windows, or a Linux without it),
the server refuses to start unless the person turned on the "unsandboxed workers"
preference, which says what it gives up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import zmq

from ..protocol import codec
from ..protocol.results import StepResult, target_from_wire
from ..protocol.targets import Target
from ..scenes import FrameSpec

REPLY_KINDS = frozenset({"reset", "step", "step_batch"})


class UnsandboxedRefused(RuntimeError):
    """The OS sandbox cannot run here and the person did not accept unsandboxed workers."""


class GuiServer:
    """A running local farm, its client endpoints and the replies it has answered."""

    def __init__(
        self,
        spec: FrameSpec,
        endpoint: str,
        preset: str,
        curve: tuple[Path, Path] | None,
        blender: str | None,
        os_sandbox: bool,
        hard_deadline: float | None = None,
    ) -> None:
        from ..farm.local import LocalFarm

        self._dir = tempfile.TemporaryDirectory(prefix="derender-gui-")
        monitor = f"ipc://{self._dir.name}/monitor.sock"
        options: dict[str, Any] = {
            "samples": spec.samples,
            "height": spec.height,
            "preset": preset,
            "monitor": monitor,
            "blender": blender,
            "os_sandbox": os_sandbox,
            "metrics_interval": 0,
        }
        if hard_deadline is not None:
            options["hard_deadline"] = hard_deadline
        if curve is not None:
            options |= {"curve_secret": str(curve[0]), "curve_clients": str(curve[1])}
        self.farm = LocalFarm(
            workers=1, engine=spec.engine, size=spec.width, bind=endpoint, **options
        )
        self._sub: zmq.Socket = zmq.Context.instance().socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(monitor)  # before the farm binds: ZeroMQ reconnects until it does
        try:
            self.farm.start()
            status = self.farm.status()
            self.os_sandboxed = bool(status["os_sandboxed"])
            if not self.os_sandboxed and os_sandbox:
                raise UnsandboxedRefused(
                    "the OS sandbox cannot run here "
                    f"({status['os_sandbox_problem']}): remote scripts would run unconfined. "
                    "Install bubblewrap (Linux), or turn on 'Unsandboxed workers' in the "
                    "add-on preferences if you accept that risk"
                )
        except BaseException:
            self.close()
            raise
        self.endpoints = [self.farm.address]
        self.handled = 0

    def poll(self) -> list[Target | StepResult]:
        """What the farm answered since the last call: made targets and scored steps (of a
        ``step_batch``, its last result)."""
        out: list[Target | StepResult] = []
        while True:
            try:
                frames = self._sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            event = codec.decode(frames, codec.CodecLimits(max_frames=64))
            kind, reply = event.get("kind"), event.get("reply") or {}
            if kind not in REPLY_KINDS or not reply.get("ok"):
                continue
            self.handled += 1
            if kind == "reset":
                out.append(target_from_wire(reply))
                continue
            if kind == "step_batch":  # show its last result like a step
                results = [r for r in reply.get("results", []) if "outcome" in r]
                if not results:
                    continue
                reply = results[-1]
            out.append(StepResult.from_wire(reply))
        return out

    def close(self) -> None:
        """Stop the farm and its workers; idempotent."""
        self.farm.stop()
        if not self._sub.closed:
            self._sub.close(0)
        self._dir.cleanup()


def show_read_back(result: StepResult) -> int:
    """Build the scene a served script read back into the current scene with the trusted
    builder, so the viewport shows what the agent made; returns the object count."""
    from .build import build

    return 0 if result.scene is None else len(build(result.scene))
