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


def _undo() -> None:
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
}


@pytest.mark.parametrize("case", CASES)
def test_tampering_is_reported(service, case: str) -> None:
    from derender.addon.frame import reset
    from derender.addon.sandbox import integrity

    tamper, needle = CASES[case]
    spec = service.frame
    before = integrity.snapshot()
    assert integrity.tampering(spec, before) == []
    auto_exec = bpy.context.preferences.filepaths.use_scripts_auto_execute
    try:
        tamper()
        found = integrity.tampering(spec, before)
    finally:
        _undo()
        bpy.context.preferences.filepaths.use_scripts_auto_execute = auto_exec
        reset(spec)
    assert any(needle in entry for entry in found), found
    assert integrity.tampering(spec, integrity.snapshot()) == []
