"""The GUI session: the panel's own frame and handler, and the socket server's farm.

Two paths, kept apart on purpose:

- The panel ("Load target", "Run my script here") runs the person's own scripts in this
  Blender process, through :class:`derender.farm.core.Handler` (language sandbox,
  render, reward): the person's own code, shown in the panel as such.
- The socket server ("Start server") never runs a script here: it is a local farm
  (:class:`.gui_server.GuiServer`) whose disposable, OS-sandboxed workers run the remote
  scripts; this process only shows what the farm answered, rebuilding a script's
  read-back scene in the viewport with the trusted builder.

The frame lives in its own scene, ``derender``, in the current file: the user's scenes are
left alone, and only that scene's frame is reset between requests: before each the
session adopts whatever the person made since (``BuiltFrame.adopt_user_data``), so a reset
never deletes their own work.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import bpy

from ..farm.in_process import Handler
from ..protocol.messages import Reset, SceneTarget, SeedTarget, Step, StepItem
from ..protocol.results import StepResult, target_from_wire
from ..protocol.targets import Target
from ..scenes import FrameSpec, Scene
from .preferences import Settings

if TYPE_CHECKING:
    from .frame import BuiltFrame
    from .service import Service

SCENE_NAME = "derender"
SERVER_INTERVAL_S = 0.25  # how often the panel looks for what the server answered


class SessionError(RuntimeError):
    """A panel action that cannot run in the session's current state."""


@dataclass
class PanelSession:
    handler: Handler | None = None
    server: Any = None  # addon.gui_server.GuiServer while serving
    target: Target | None = None  # the last target made (here or by the server)
    result: StepResult | None = None  # the last scored step (here or by the server)
    _ids: itertools.count = field(default_factory=itertools.count)
    _served_seen: int = 0

    # -- frame --------------------------------------------------------------------
    @property
    def frame(self) -> FrameSpec | None:
        return None if self.handler is None else self.handler.service.frame

    def _built_frame(self, handler: Handler) -> BuiltFrame:
        """The frame built by ``handler``'s service (always an :class:`.service.Service`)."""
        return cast("Service", handler.service).built_frame

    def build(self, spec: FrameSpec, preset: str) -> Handler:
        """The handler for ``spec``, building the frame into the ``derender`` scene."""
        if self.handler is not None and self.handler.frame_hash == spec.hash():
            ensure_scene()  # the service's next reset restores anything changed in it
            self.handler.default_preset = preset
            return self.handler
        if self.server is not None:
            raise SessionError(
                # a server is only started with a handler (start_server builds one first)
                f"the server is serving frame {cast(Handler, self.handler).frame_hash}: "
                f"stop it before changing the frame to {spec.hash()}"
            )
        from .service import Service

        ensure_scene()
        self.handler = Handler(Service(spec), default_preset=preset)
        self.target = self.result = None
        return self.handler

    # -- panel requests --------------------------------------------------------------
    def _id(self) -> str:
        return f"panel-{next(self._ids)}"

    def load_target(
        self, spec: FrameSpec, settings: Settings, target: Scene | tuple[int, int]
    ) -> Target:
        """Render and cache a target: a scene, or a generator (seed, index)."""
        handler = self.build(spec, settings.preset)
        self._built_frame(handler).adopt_user_data()
        t = SceneTarget(target) if isinstance(target, Scene) else SeedTarget(*target)
        self.target = target_from_wire(handler.handle(Reset(self._id(), t, masks=True)))
        self.result = None
        return self.target

    def run(self, spec: FrameSpec, settings: Settings, script: str, seed: int) -> StepResult:
        """Run ``script`` in the sandbox against the loaded target and score it."""
        if self.target is None or self.handler is None:
            raise SessionError("load a target first: there is nothing to compare with")
        if self.handler.frame_hash != spec.hash():
            raise SessionError("the frame settings changed since the target was loaded")
        self._built_frame(self.handler).adopt_user_data()
        # by scene, not id: a target the server made is not in this handler's cache
        item = StepItem(script, SceneTarget(self.target.scene), seed)
        reply = self.handler.handle(Step(self._id(), item, settings.preset, masks=False))
        self.result = StepResult.from_wire(reply)
        return self.result

    # -- server -----------------------------------------------------------------------
    def start_server(self, spec: FrameSpec, settings: Settings) -> Any:
        """Start a local farm bound to the configured address (its workers run the remote
        scripts) and show what it answers from ``bpy.app.timers``."""
        from ..protocol.transport import is_loopback
        from .gui_server import GuiServer

        if self.server is not None:
            raise SessionError(f"already serving on {self.server.endpoints}")
        endpoint = settings.endpoint
        if not is_loopback(endpoint) and not bpy.app.online_access:
            raise SessionError(
                f"online access is disabled in Blender's preferences: not binding {endpoint}"
            )
        curve = None
        if settings.curve_dir:
            keys = Path(bpy.path.abspath(settings.curve_dir))
            curve = (keys / "server.key_secret", keys / "clients")
        self.build(spec, settings.preset)
        self.server = GuiServer(
            spec,
            endpoint,
            settings.preset,
            curve,
            blender=bpy.app.binary_path or None,  # the pip bpy module has no binary
            os_sandbox=not settings.unsandboxed,
        )
        self._served_seen = 0
        bpy.app.timers.register(server_tick, first_interval=SERVER_INTERVAL_S, persistent=True)
        return self.server

    def show_served(self) -> int:
        """Take in what the server answered since the last look: the last target, the
        last script's result, its read-back scene in the viewport; returns how many."""
        if self.server is None or self.handler is None:
            return 0
        served = self.server.poll()
        for answer in served:
            if isinstance(answer, Target):
                self.target = answer
            else:
                from .gui_server import show_read_back

                self.result = answer
                built_frame = self._built_frame(self.handler)
                built_frame.adopt_user_data()
                built_frame.reset(self.handler.service.frame)
                show_read_back(answer)
        return len(served)

    def stop_server(self) -> None:
        if bpy.app.timers.is_registered(server_tick):
            bpy.app.timers.unregister(server_tick)
        if self.server is not None:
            self.server.close()
            self.server = None

    def close(self) -> None:
        """Stop serving and forget the frame (a new file has no frame to serve)."""
        self.stop_server()
        self.handler = self.target = self.result = None


SESSION = PanelSession()


def ensure_scene() -> bpy.types.Scene:
    """The ``derender`` scene, created if needed and made the window's scene; the panel
    settings of the scene the user was in come along, so the panel shows what was built."""
    scene = bpy.data.scenes.get(SCENE_NAME) or bpy.data.scenes.new(SCENE_NAME)
    source = bpy.context.scene
    if source is not None and source != scene:
        # Scene.derender is registered at runtime (registration.register): not in the stubs
        for prop in source.derender.bl_rna.properties:  # type: ignore[attr-defined]
            if prop.identifier != "rna_type":
                setattr(
                    scene.derender,  # type: ignore[attr-defined]
                    prop.identifier,
                    getattr(source.derender, prop.identifier),  # type: ignore[attr-defined]
                )
    window = bpy.context.window or next(
        iter(cast(bpy.types.WindowManager, bpy.context.window_manager).windows), None
    )
    if window is not None and window.scene != scene:
        window.scene = scene
    return scene


def server_tick() -> float:
    """The server's ``bpy.app.timers`` callback: show what it answered, redraw sidebars
    when the count of requests served moved."""
    SESSION.show_served()
    server = SESSION.server
    if server is not None and server.handled != SESSION._served_seen:
        SESSION._served_seen = server.handled
        for window in cast(bpy.types.WindowManager, bpy.context.window_manager).windows:
            for area in window.screen.areas:
                if area.type == "VIEW_3D":
                    area.tag_redraw()
    return SERVER_INTERVAL_S
