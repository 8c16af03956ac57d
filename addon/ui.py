# mypy: disable-error-code="union-attr,misc"
# (fake-bpy: context.scene and self.layout are Optional, Scene.derender is registered at
# runtime, and Panel types bl_space_type/bl_region_type as Literals where _Base has str)
"""The 3D Viewport sidebar tab "derender": frame, target, script and server sections.

Panels only draw: every action is an operator in ``addon.operators``; results come from
``addon.session.SESSION`` (the last target and step replies, the server's counters).
"""

from __future__ import annotations

import bpy

from .session import SESSION

CATEGORY = "derender"
MAX_LINES = 12  # stdout/message lines shown in the panel; the rest is in the Info log


class _Base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class DERENDER_PT_frame(_Base, bpy.types.Panel):
    bl_label = "Frame"

    def draw(self, context: bpy.types.Context) -> None:
        props = context.scene.derender
        col = self.layout.column()
        col.prop(props, "engine")
        row = col.row(align=True)
        row.prop(props, "width")
        row.prop(props, "height")
        col.prop(props, "samples")
        row = col.row(align=True)
        row.operator("derender.build_frame", icon="CAMERA_DATA")
        row.operator("derender.defaults_from_preferences", text="", icon="PREFERENCES")
        frame = SESSION.frame
        if frame is not None:
            col.label(
                text=f"Built: {frame.engine} {frame.width}x{frame.height}, frame {frame.hash()}"
            )


class DERENDER_PT_target(_Base, bpy.types.Panel):
    bl_label = "Target"

    def draw(self, context: bpy.types.Context) -> None:
        props = context.scene.derender
        col = self.layout.column()
        row = col.row(align=True)
        row.prop(props, "seed")
        row.prop(props, "index")
        row = col.row(align=True)
        row.operator("derender.load_target", text="Load seed").source = "SEED"
        row.operator("derender.random_target", text="", icon="FILE_REFRESH")
        col.separator()
        col.prop(props, "scene_json")
        row = col.row(align=True)
        row.prop(props, "json_index")
        row.operator("derender.load_target", text="Load JSON").source = "JSON"
        target = SESSION.target
        if target is not None:
            col.label(text=f"{target.target_id}: {len(target.scene.objects)} objects")
            col.operator("derender.show_image", text="Show target", icon="IMAGE").which = "TARGET"


class DERENDER_PT_script(_Base, bpy.types.Panel):
    bl_label = "Script"

    def draw(self, context: bpy.types.Context) -> None:
        props = context.scene.derender
        col = self.layout.column()
        col.template_ID(props, "script", new="text.new", open="text.open")
        col.prop(props, "script_seed")
        col.operator("derender.run_script", icon="PLAY")
        result = SESSION.result
        if result is None:
            return
        box = col.box()
        box.label(
            text=f"Outcome: {result.outcome}",
            icon="CHECKMARK" if result.outcome == "ok" else "ERROR",
        )
        if result.line is not None:
            box.label(text=f"Line {result.line}")
        _lines(box, result.message)
        box.label(text=f"Reward ({result.preset}): {result.reward:.4f}")
        grid = box.grid_flow(columns=2, align=True)
        for name, value in sorted(result.components.items()):
            grid.label(text=name)
            grid.label(text=f"{value:.4f}")
        for name in result.unavailable:
            box.label(text=f"{name}: unavailable", icon="INFO")
        if result.stdout:
            box.label(text="stdout:")
            _lines(box, result.stdout)
        box.operator(
            "derender.show_image", text="Show target | render", icon="IMAGE"
        ).which = "COMPARE"


class DERENDER_PT_server(_Base, bpy.types.Panel):
    bl_label = "Server"

    def draw(self, context: bpy.types.Context) -> None:
        from .preferences import settings

        col = self.layout.column()
        server = SESSION.server
        if server is None:
            col.label(text=f"Stopped ({settings(context).endpoint})")
            col.operator("derender.server_start", icon="PLAY")
            return
        col.label(text=f"Serving {' '.join(server.endpoints)}", icon="LINKED")
        if server.os_sandboxed:
            col.label(text="Scripts run in OS-sandboxed workers", icon="LOCKED")
        else:
            col.label(text="Scripts run in UNSANDBOXED workers", icon="ERROR")
        col.label(text=f"Requests served: {server.handled}")
        col.operator("derender.server_stop", icon="PAUSE")


def _lines(layout: bpy.types.UILayout, text: str) -> None:
    lines = text.splitlines()
    for line in lines[:MAX_LINES]:
        layout.label(text=line)
    if len(lines) > MAX_LINES:
        layout.label(text=f"... {len(lines) - MAX_LINES} more lines")


CLASSES = (DERENDER_PT_frame, DERENDER_PT_target, DERENDER_PT_script, DERENDER_PT_server)
