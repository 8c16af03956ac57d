"""Checks after a script: the frame, the stage, Blender's script hooks.

The proxy already keeps a script away from all of these; this is the second look that
catches an escape (and a bug in the proxy). ``snapshot()`` is taken before the script and
``tampering()`` after it; any entry means ``frame_tampered`` and a recycled worker. The
shared assets are verified apart, before each render and only those it can use
(:func:`.assets.verify_in_use`).
``restore()`` then undoes what ``BuiltFrame.reset`` does not own: handlers, the driver
namespace, the sequencer, Freestyle line sets, the auto-exec preference, so that even in a
process that is not replaced (the GUI panel) nothing reaches a later request.

Properties registered on Blender's types at runtime (``bpy.props``, which no proxy
exposes) are counted on the frame's and the assets' types, and reported, not undone: the
worker that reports them is replaced.

Timers and msgbus subscriptions have no listing API in Blender, so they cannot be
verified here: they are only reachable through ``bpy.app`` / ``bpy.msgbus``, which the
proxy never exposes (and a worker whose frame was tampered with is replaced).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import bpy

from ...scenes.frame import FrameSpec
from ..frame import BuiltFrame
from .session import AgentData

# Datablock collections whose members can carry drivers or shader nodes.
_ANIMATABLE = ("objects", "meshes", "materials", "worlds", "cameras", "lights", "node_groups",
               "scenes")  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """What the script must leave as it found it (beyond the frame's own snapshot)."""

    handlers: tuple[tuple[str, tuple[Callable, ...]], ...]
    driver_namespace: frozenset[str]
    auto_exec: bool
    texts: int
    libraries: int
    linestyles: int
    file_images: int
    sequencer_strips: tuple[str, ...]
    stage: frozenset[int]  # session_uid of every object on the stage before the script
    linesets: tuple[int, ...]  # Freestyle line sets per view layer
    registered: tuple[int, ...]  # RNA properties of each of _REGISTRABLE


# The handler lists Blender has (a fixed set: bpy.app.handlers takes no new attributes).
_HANDLER_NAMES = tuple(
    name
    for name in dir(bpy.app.handlers)
    if not name.startswith("_") and isinstance(getattr(bpy.app.handlers, name), list)
)


# Types a property can be registered on (``bpy.types.Scene.x = bpy.props.IntProperty()``):
# the frame's and the cached assets' datablock types, and the bases whose properties all
# of them, and their nodes, inherit. A property registered at runtime persists in the
# process; its value is nothing the frame check's plans read until a reference walk meets
# its type again (``rna_walk.Walk``), so it is counted here.
_REGISTRABLE = tuple(
    getattr(bpy.types, name)
    for name in (
        "ID", "Scene", "Object", "Mesh", "Material", "World", "Camera", "SunLight",
        "AreaLight", "ShaderNodeTree", "Collection", "Image", "ViewLayer", "Node",
        "ShaderNodeGroup", "NodeSocket",
    )
)  # fmt: skip


def _registered() -> tuple[int, ...]:
    return tuple(len(t.bl_rna.properties) for t in _REGISTRABLE)


def _handler_lists() -> list[tuple[str, list]]:
    h = bpy.app.handlers
    return [(name, getattr(h, name)) for name in _HANDLER_NAMES]


def _strips(scene: bpy.types.Scene) -> tuple[str, ...]:
    editor = scene.sequence_editor
    return () if editor is None else tuple(sorted(s.name for s in editor.strips_all))


def _scene() -> bpy.types.Scene:
    return cast(bpy.types.Scene, bpy.context.scene)


def snapshot() -> Snapshot:
    scene = _scene()
    return Snapshot(
        handlers=tuple((name, tuple(entries)) for name, entries in _handler_lists()),
        driver_namespace=frozenset(bpy.app.driver_namespace.keys()),
        auto_exec=bool(
            cast(bpy.types.Preferences, bpy.context.preferences).filepaths.use_scripts_auto_execute
        ),
        texts=len(bpy.data.texts),
        libraries=len(bpy.data.libraries),
        linestyles=len(bpy.data.linestyles),
        file_images=sum(1 for im in bpy.data.images if im.source == "FILE"),
        sequencer_strips=_strips(scene),
        stage=frozenset(o.session_uid for o in scene.objects),
        linesets=tuple(len(layer.freestyle_settings.linesets) for layer in scene.view_layers),
        registered=_registered(),
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


def tampering(frame: BuiltFrame, spec: FrameSpec, before: Snapshot, agent: AgentData) -> list[str]:
    """Everything that differs from ``frame`` (built for ``spec``) or ``before``, and
    every object on the stage the script did not make through the sandbox; [] if
    intact."""
    out = frame.differences(spec)
    scene = _scene()
    out += [
        f"object {obj.name!r} on the stage was not made by the script"
        for obj in scene.objects
        if obj.session_uid not in before.stage and not frame.owns(obj) and not agent.owns(obj)
    ]
    after = snapshot()
    for (name, was), (_, now) in zip(before.handlers, after.handlers, strict=True):
        if now != was:
            out.append(f"handlers {name!r} changed ({len(was)} -> {len(now)} entries)")
    counts = zip(_REGISTRABLE, before.registered, after.registered, strict=True)
    for kind, count_was, count_now in counts:
        if count_now != count_was:
            out.append(f"properties registered on {kind.__name__} ({count_was} -> {count_now})")
    for field, was in before.__dict__.items():
        now = getattr(after, field)
        if field not in ("handlers", "stage", "registered") and now != was:
            out.append(f"{field} changed from {_short(was)} to {_short(now)}")
    if scene.render.use_freestyle:
        out.append("Freestyle is enabled")
    for layer in scene.view_layers:
        if len(layer.freestyle_settings.modules):
            out.append(f"view layer {layer.name!r} has Freestyle style modules")
    if getattr(scene, "compositing_node_group", None) is not None:
        out.append("the scene has a compositor node group")
    out += _drivers_and_scripts()
    return out


def restore(before: Snapshot) -> None:
    """Undo what ``BuiltFrame.reset`` does not: hooks, namespace, sequencer, line sets."""
    kept = dict(before.handlers)
    for name, entries in _handler_lists():
        for entry in [e for e in entries if e not in kept.get(name, ())]:
            entries.remove(entry)
    for key in set(bpy.app.driver_namespace.keys()) - before.driver_namespace:
        del bpy.app.driver_namespace[key]
    prefs = cast(bpy.types.Preferences, bpy.context.preferences)
    prefs.filepaths.use_scripts_auto_execute = before.auto_exec
    scene = _scene()
    editor = scene.sequence_editor
    if editor is not None:
        for strip in [s for s in editor.strips if s.name not in before.sequencer_strips]:
            editor.strips.remove(strip)
    for layer, count in zip(scene.view_layers, before.linesets, strict=False):
        settings = layer.freestyle_settings
        while len(settings.linesets) > count:
            settings.linesets.remove(settings.linesets[-1])
        for module in list(settings.modules):
            settings.modules.remove(module)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
