"""Checks after a script: the frame by value plus Blender's script-execution hooks.

The proxy already keeps a script away from all of these; this is the second look that
catches an escape (and a bug in the proxy). ``snapshot()`` is taken before the script
and ``tampering()`` after it; any entry means ``frame_tampered`` and a recycled worker.
Timers and msgbus subscriptions have no listing API in Blender, so they cannot be
verified here: they are only reachable through ``bpy.app`` / ``bpy.msgbus``, which the
proxy never exposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import bpy

from ...scenes.frame import FrameSpec
from ..frame import frame_differences

# Datablock collections whose members can carry drivers or shader nodes.
_ANIMATABLE = ("objects", "meshes", "materials", "worlds", "cameras", "lights", "node_groups",
               "scenes")  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """What the script must leave as it found it (beyond the frame spec)."""

    handlers: tuple[tuple[str, int], ...]
    driver_namespace: frozenset[str]
    auto_exec: bool
    texts: int
    libraries: int
    linestyles: int
    file_images: int
    sequencer_strips: int


def _handlers() -> tuple[tuple[str, int], ...]:
    h = bpy.app.handlers
    return tuple(
        (name, len(getattr(h, name)))
        for name in dir(h)
        if not name.startswith("_") and isinstance(getattr(h, name), list)
    )


def _strips(scene: bpy.types.Scene) -> int:
    editor = scene.sequence_editor
    return 0 if editor is None else len(editor.strips_all)


def snapshot() -> Snapshot:
    scene = cast(bpy.types.Scene, bpy.context.scene)
    return Snapshot(
        handlers=_handlers(),
        driver_namespace=frozenset(bpy.app.driver_namespace.keys()),
        auto_exec=bool(
            cast(bpy.types.Preferences, bpy.context.preferences).filepaths.use_scripts_auto_execute
        ),
        texts=len(bpy.data.texts),
        libraries=len(bpy.data.libraries),
        linestyles=len(bpy.data.linestyles),
        file_images=sum(1 for im in bpy.data.images if im.source == "FILE"),
        sequencer_strips=_strips(scene),
    )


def _drivers_and_scripts() -> list[str]:
    out = []
    for coll in _ANIMATABLE:
        for idb in getattr(bpy.data, coll):
            trees = [idb] + ([idb.node_tree] if getattr(idb, "node_tree", None) else [])
            for owner in trees:
                anim = owner.animation_data
                if anim is not None and (len(anim.drivers) or anim.action is not None):
                    out.append(f"{coll} {idb.name!r} has drivers or animation")
            tree = idb if coll == "node_groups" else getattr(idb, "node_tree", None)
            if tree is not None and any(n.bl_idname == "ShaderNodeScript" for n in tree.nodes):
                out.append(f"{coll} {idb.name!r} has an OSL script node")
    return out


def tampering(spec: FrameSpec, before: Snapshot) -> list[str]:
    """Everything that differs from the frame or from ``before``; [] if intact."""
    out = list(frame_differences(spec))
    after = snapshot()
    for field, was in before.__dict__.items():
        now = getattr(after, field)
        if now != was:
            out.append(f"{field} changed from {was!r} to {now!r}")
    scene = cast(bpy.types.Scene, bpy.context.scene)
    if scene.render.use_freestyle:
        out.append("Freestyle is enabled")
    for layer in scene.view_layers:
        if len(layer.freestyle_settings.modules):
            out.append(f"view layer {layer.name!r} has Freestyle style modules")
    if getattr(scene, "compositing_node_group", None) is not None:
        out.append("the scene has a compositor node group")
    out += _drivers_and_scripts()
    return out
