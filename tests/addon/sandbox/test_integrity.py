"""integrity.tampering: the second look after a script, fed with simulated escapes.

Each case tampers with trusted bpy (what a sandbox escape could do) and checks that the
service's post-script check names it; the case undoes what reset() cannot.
"""

from __future__ import annotations

import bpy
import pytest


def _handler(*_args: object) -> None:
    pass


def _add_handler() -> None:
    bpy.app.handlers.render_pre.append(_handler)


def _driver() -> None:
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.object.driver_add("location", 0)


def _osl() -> None:
    mat = bpy.data.materials.new("osl")
    mat.node_tree.nodes.new("ShaderNodeScript")


def _camera() -> None:
    bpy.context.scene.camera.location.x += 1.0


def _world() -> None:
    bpy.context.scene.world.node_tree.nodes["Background"].inputs[1].default_value = 5.0


def _freestyle() -> None:
    bpy.context.scene.render.use_freestyle = True


def _namespace() -> None:
    bpy.app.driver_namespace["evil"] = print


def _autoexec() -> None:
    prefs = bpy.context.preferences.filepaths
    prefs.use_scripts_auto_execute = not prefs.use_scripts_auto_execute


def _register(kind: str) -> None:
    getattr(bpy.types, kind).derender_evil = bpy.props.IntProperty()


def _undo() -> None:
    for kind in ("ID", "Scene", "Node"):
        if "derender_evil" in getattr(bpy.types, kind).bl_rna.properties:
            delattr(getattr(bpy.types, kind), "derender_evil")
    if _handler in bpy.app.handlers.render_pre:
        bpy.app.handlers.render_pre.remove(_handler)
    bpy.app.driver_namespace.pop("evil", None)
    bpy.context.scene.render.use_freestyle = False


CASES = {
    "handler": (_add_handler, "render_pre"),
    "text": (lambda: bpy.data.texts.new("evil.py"), "texts"),
    "driver": (_driver, "drivers"),
    "osl": (_osl, "OSL"),
    "camera": (_camera, "Object('Camera').location"),
    "world": (_world, "World('World').node_tree.nodes"),
    "freestyle": (_freestyle, "Freestyle"),
    "driver_namespace": (_namespace, "driver_namespace"),
    "autoexec": (_autoexec, "auto_exec"),
    "registered on Scene": (lambda: _register("Scene"), "registered on Scene"),
    "registered on every node": (lambda: _register("Node"), "registered on ShaderNodeGroup"),
    "registered on every datablock": (lambda: _register("ID"), "registered on Material"),
}


@pytest.mark.parametrize("case", CASES)
def test_tampering_is_reported(service, case: str) -> None:
    from derender.addon.sandbox import integrity

    tamper, needle = CASES[case]
    spec = service.frame
    from derender.addon.sandbox.session import AgentData

    before = integrity.snapshot()
    assert integrity.tampering(service.built_frame, spec, before, AgentData()) == []
    auto_exec = bpy.context.preferences.filepaths.use_scripts_auto_execute
    try:
        tamper()
        found = integrity.tampering(service.built_frame, spec, before, AgentData())
    finally:
        _undo()
        bpy.context.preferences.filepaths.use_scripts_auto_execute = auto_exec
        service.built_frame.reset(spec)
    assert any(needle in entry for entry in found), found
    assert integrity.tampering(service.built_frame, spec, integrity.snapshot(), AgentData()) == []


def test_what_reset_does_not_own_is_restored(service) -> None:
    """Hooks, namespace entries, the sequencer and line sets an escape leaves behind do not
    reach the next request, even in a process that is not replaced."""
    from derender.addon.sandbox import integrity
    from derender.addon.sandbox.session import AgentData

    spec = service.frame
    before = integrity.snapshot()
    _add_handler()
    _namespace()
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    editor.strips.new_effect("evil", "COLOR", 1, frame_start=1, length=10)
    scene.view_layers[0].freestyle_settings.linesets.new("evil")
    found = integrity.tampering(service.built_frame, spec, before, AgentData())
    kinds = {f.split()[0] for f in found}
    assert kinds >= {"handlers", "driver_namespace", "sequencer_strips", "linesets"}, found
    integrity.restore(before)
    service.built_frame.reset(spec)
    assert integrity.tampering(service.built_frame, spec, before, AgentData()) == []
    assert _handler not in bpy.app.handlers.render_pre and "evil" not in bpy.app.driver_namespace


def test_objects_on_the_stage_the_script_did_not_make_are_reported(service) -> None:
    from derender.addon.sandbox import integrity
    from derender.addon.sandbox.session import AgentData

    before = integrity.snapshot()
    light = bpy.data.objects.new("spy", bpy.data.lights.new("spy", "POINT"))
    bpy.context.scene.collection.objects.link(light)
    try:
        found = integrity.tampering(service.built_frame, service.frame, before, AgentData())
    finally:
        service.built_frame.reset(service.frame)
    assert "object 'spy' on the stage was not made by the script" in found
