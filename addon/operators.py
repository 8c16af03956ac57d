# mypy: disable-error-code="union-attr,misc"
# (fake-bpy: context members are Optional, Scene.derender is registered at runtime, and
# Operator.execute returns a Literal set where _Operator's mixin returns set[str])
"""The panel's operators (``bpy.ops.derender.*``).

Each operator reports failures with ``self.report({"ERROR"}, ...)`` and returns
CANCELLED instead of raising. Building the frame is all or nothing: datablocks it created
are removed again if it fails. The panel's requests go through ``addon.session.SESSION``:
the same request core, language sandbox and reward as a remote client's, in this process,
for the person's own scripts; the server's requests run in its farm's workers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import bpy
import numpy as np
from bpy.props import EnumProperty

from ..scenes import load_scenes
from .preferences import settings
from .session import SESSION

TARGET_IMAGE = "derender target"
COMPARE_IMAGE = "derender target | render"
# ID collections a failed build may have added to; UI data is never created by a build.
_UI_COLLECTIONS = {"window_managers", "screens", "workspaces", "libraries"}


def _id_collections() -> list[bpy.types.bpy_prop_collection]:
    out = []
    for name in dir(bpy.data):
        value = getattr(bpy.data, name, None)
        if name not in _UI_COLLECTIONS and isinstance(value, bpy.types.bpy_prop_collection):
            out.append(value)
    return out


@contextmanager
def rollback_on_error() -> Iterator[None]:
    """Remove every datablock created inside the block if the block raises, after putting
    the window back on its scene (removing a window's scene would crash Blender)."""
    before = {idb.as_pointer() for coll in _id_collections() for idb in coll}
    windows = [(w, w.scene) for w in bpy.context.window_manager.windows]
    try:
        yield
    except BaseException:
        for window, scene in windows:
            if window.scene != scene:
                window.scene = scene
        added = [
            idb for coll in _id_collections() for idb in coll if idb.as_pointer() not in before
        ]
        if added:
            bpy.data.batch_remove(added)
        raise


def set_image(name: str, rgb: np.ndarray) -> bpy.types.Image:
    """Write a uint8 H x W x 3 array (row 0 at the top) into the image ``name``."""
    h, w = rgb.shape[:2]
    img = bpy.data.images.get(name)
    if img is not None and tuple(img.size) != (w, h):
        bpy.data.images.remove(img)
        img = None
    if img is None:
        img = bpy.data.images.new(name, w, h, alpha=False)
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = rgb[::-1, :, :3] / np.float32(255.0)  # Blender stores rows bottom-up
    img.pixels.foreach_set(rgba.ravel())  # type: ignore[attr-defined]  # a bpy_prop_array
    img.update()
    return img


def show_image(context: bpy.types.Context, img: bpy.types.Image) -> bool:
    """Show ``img`` in the window's Image Editor, splitting one off the largest 3D Viewport
    if there is none; False if the screen has neither."""
    screen = context.screen
    areas = list(screen.areas) if screen is not None else []
    editor = next((a for a in areas if a.type == "IMAGE_EDITOR"), None)
    if editor is None:
        views = sorted((a for a in areas if a.type == "VIEW_3D"), key=lambda a: a.width)
        if not views:
            return False
        with context.temp_override(window=context.window, screen=screen, area=views[-1]):
            bpy.ops.screen.area_split(direction="VERTICAL", factor=0.5)
        editor = next(
            a for a in screen.areas if a.as_pointer() not in {b.as_pointer() for b in areas}
        )
        editor.type = "IMAGE_EDITOR"
    editor.spaces.active.image = img
    editor.tag_redraw()
    return True


def _compare_array() -> np.ndarray:
    assert SESSION.target is not None  # both callers have checked that a target is loaded
    target = SESSION.target.image
    render = SESSION.result.image if SESSION.result else None
    if render is None:  # the script failed before rendering: show an empty slot
        render = np.zeros_like(target)
    return np.concatenate([target, render], axis=1)


class _Operator:
    """Shared execute: run ``action`` and turn any failure into an ERROR report."""

    if TYPE_CHECKING:  # provided by bpy.types.Operator, which every subclass also derives
        bl_label: str

        def report(self, type: set[str], message: str) -> None: ...

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            return self.action(context)
        except Exception as exc:  # the UI boundary: report, never raise into Blender
            self.report({"ERROR"}, f"{self.bl_label} failed: {exc}")
            return {"CANCELLED"}

    def action(self, context: bpy.types.Context) -> set[str]:
        raise NotImplementedError

    def _show(self, context: bpy.types.Context, name: str, rgb: np.ndarray) -> None:
        img = set_image(name, rgb)
        if not show_image(context, img):
            self.report({"INFO"}, f"no Image Editor or 3D Viewport to show {img.name!r} in")


class DERENDER_OT_build_frame(_Operator, bpy.types.Operator):
    """Build the locked CLEVR frame (camera, lights, ground, world) into the "derender" scene"""

    bl_idname = "derender.build_frame"
    bl_label = "Build frame"

    def action(self, context: bpy.types.Context) -> set[str]:
        spec = context.scene.derender.frame_spec()
        try:
            with rollback_on_error():
                SESSION.build(spec, settings(context).preset)
        except Exception:
            SESSION.close()  # the old frame may be gone too: keep no handler to a dead frame
            raise
        self.report(
            {"INFO"}, f"built frame {spec.hash()} ({spec.engine} {spec.width}x{spec.height})"
        )
        return {"FINISHED"}


class DERENDER_OT_defaults_from_preferences(_Operator, bpy.types.Operator):
    """Copy the default engine and resolution from the add-on preferences"""

    bl_idname = "derender.defaults_from_preferences"
    bl_label = "Defaults from preferences"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a plain set)

    def action(self, context: bpy.types.Context) -> set[str]:
        prefs, props = settings(context), context.scene.derender
        props.engine, props.width, props.height = prefs.engine, prefs.width, prefs.height
        return {"FINISHED"}


class DERENDER_OT_load_target(_Operator, bpy.types.Operator):
    """Render a target scene (from the seed or a CLEVR JSON file) and show it"""

    bl_idname = "derender.load_target"
    bl_label = "Load target"

    source: EnumProperty(  # type: ignore[valid-type]
        items=[
            ("SEED", "Seed", "the generator's scene at seed/index"),
            ("JSON", "JSON", "a scene from a CLEVR scene JSON file"),
        ],
        default="SEED",
    )

    def action(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.derender
        spec = props.frame_spec()
        if self.source == "JSON":
            if not props.scene_json:
                raise ValueError("choose a CLEVR scene JSON file first")
            scenes = load_scenes(bpy.path.abspath(props.scene_json))
            if props.json_index >= len(scenes):
                raise ValueError(
                    f"{props.scene_json!r} has {len(scenes)} scene(s); "
                    f"index {props.json_index} is out of range"
                )
            target = scenes[props.json_index]
        else:
            target = (props.seed, props.index)
        made = SESSION.load_target(spec, settings(context), target)
        self._show(context, TARGET_IMAGE, made.image)
        self.report({"INFO"}, f"target {made.target_id} ({len(made.scene.objects)} objects)")
        return {"FINISHED"}


class DERENDER_OT_random_target(_Operator, bpy.types.Operator):
    """Pick a random generator seed and load its first scene as the target"""

    bl_idname = "derender.random_target"
    bl_label = "Random target"

    def action(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.derender
        props.seed, props.index = random.randrange(2**31 - 1), 0
        return bpy.ops.derender.load_target(source="SEED")  # type: ignore[attr-defined]


class DERENDER_OT_show_image(_Operator, bpy.types.Operator):
    """Show the target, or the target next to the last render, in an Image Editor"""

    bl_idname = "derender.show_image"
    bl_label = "Show image"

    which: EnumProperty(  # type: ignore[valid-type]
        items=[("TARGET", "Target", ""), ("COMPARE", "Target | render", "")], default="TARGET"
    )

    def action(self, context: bpy.types.Context) -> set[str]:
        if SESSION.target is None:
            raise ValueError("no target is loaded")
        if self.which == "TARGET":
            self._show(context, TARGET_IMAGE, SESSION.target.image)
        else:
            self._show(context, COMPARE_IMAGE, _compare_array())
        return {"FINISHED"}


class DERENDER_OT_run_script(_Operator, bpy.types.Operator):
    """Run your own script (the chosen Text) here, in this Blender, through the language sandbox, render it and score it. Remote scripts never run here: the server's OS-sandboxed workers run them"""  # noqa: E501  (Blender shows the docstring as the tooltip)

    bl_idname = "derender.run_script"
    bl_label = "Run my script here"

    def action(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.derender
        text = props.script
        if text is None:
            raise ValueError("choose a Text datablock holding the script")
        name, source = text.name, text.as_string()
        result = SESSION.run(props.frame_spec(), settings(context), source, props.script_seed)
        if bpy.data.texts.get(name) is None:
            # The service removes datablocks made after the frame; the script is the user's.
            text = bpy.data.texts.new(name)
            text.from_string(source)
            context.scene.derender.script = text
        self._show(context, COMPARE_IMAGE, _compare_array())
        level: Literal["INFO", "WARNING"] = "INFO" if result.outcome == "ok" else "WARNING"
        where = f" (line {result.line})" if result.line is not None else ""
        self.report(
            {level},
            f"{result.outcome}{where}: reward {result.reward:.4f}"
            + (f"; {result.message}" if result.message else ""),
        )
        return {"FINISHED"}


class DERENDER_OT_server_start(_Operator, bpy.types.Operator):
    """Serve the derender protocol on the address set in the add-on preferences"""

    bl_idname = "derender.server_start"
    bl_label = "Start server"

    def action(self, context: bpy.types.Context) -> set[str]:
        server = SESSION.start_server(context.scene.derender.frame_spec(), settings(context))
        self.report({"INFO"}, f"serving on {' '.join(server.endpoints)}")
        return {"FINISHED"}


class DERENDER_OT_server_stop(_Operator, bpy.types.Operator):
    """Stop the derender server"""

    bl_idname = "derender.server_stop"
    bl_label = "Stop server"

    def action(self, context: bpy.types.Context) -> set[str]:
        if SESSION.server is None:
            raise ValueError("the server is not running")
        served = SESSION.server.handled
        SESSION.stop_server()
        self.report({"INFO"}, f"server stopped after {served} requests")
        return {"FINISHED"}


CLASSES = (
    DERENDER_OT_build_frame,
    DERENDER_OT_defaults_from_preferences,
    DERENDER_OT_load_target,
    DERENDER_OT_random_target,
    DERENDER_OT_show_image,
    DERENDER_OT_run_script,
    DERENDER_OT_server_start,
    DERENDER_OT_server_stop,
)
