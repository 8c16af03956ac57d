"""Blender version differences, in one place (bpy 5.0 headless; Blender 4.2+ in the GUI).

* EEVEE's engine id: ``BLENDER_EEVEE_NEXT`` in 4.2-4.4, ``BLENDER_EEVEE`` before and since 5.0.
* Material and world node trees: before 5.0 they exist only after ``use_nodes = True``;
  since 5.0 ``use_nodes`` is deprecated (always True) and setting it warns.
* The compositor is not used: its Viewer node is never evaluated in background mode, so
  pixels are read back through the render's own image output (see ``addon.render``).
"""

from __future__ import annotations

from typing import Any, cast

import bpy

ENGINE_IDS_5: dict[str, str] = {
    "eevee": "BLENDER_EEVEE",
    "workbench": "BLENDER_WORKBENCH",
    "cycles": "CYCLES",
}


def _version() -> tuple[int, int]:
    major, minor = bpy.app.version[:2]
    return (major, minor)


def engine_id(engine: str) -> str:
    """The bpy ``scene.render.engine`` id of "eevee", "workbench" or "cycles"."""
    try:
        ident = ENGINE_IDS_5[engine]
    except KeyError:
        raise ValueError(f"engine must be one of {tuple(ENGINE_IDS_5)}, got {engine!r}") from None
    if engine == "eevee" and (4, 2) <= _version() < (5, 0):
        return "BLENDER_EEVEE_NEXT"
    return ident


def ensure_node_tree(idb: bpy.types.Material | bpy.types.World) -> bpy.types.NodeTree:
    """The material's or world's node tree, created the way this Blender version needs."""
    if _version() < (5, 0) and not idb.use_nodes:
        idb.use_nodes = True
    tree = idb.node_tree
    if tree is None:
        raise RuntimeError(f"{type(idb).__name__} {idb.name!r} has no node tree")
    return tree


def principled_bsdf(mat: bpy.types.Material) -> bpy.types.ShaderNode:
    """The material's Principled BSDF node (found by type: its name is user-editable)."""
    for node in ensure_node_tree(mat).nodes:
        if node.type == "BSDF_PRINCIPLED":
            return cast(bpy.types.ShaderNode, node)
    raise RuntimeError(f"material {mat.name!r} has no Principled BSDF node")


_GPU_BACKENDS: tuple[str, ...] = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
_cycles_device: str | None = None


def cycles_device() -> str:
    """Return "GPU" if Cycles has a GPU backend with a device here (enabling it), else "CPU".

    Decided once per process: probing the devices is slow and the answer cannot change.
    """
    global _cycles_device
    if _cycles_device is None:
        _cycles_device = "CPU"
        addon = cast(bpy.types.Preferences, bpy.context.preferences).addons.get("cycles")
        # CyclesPreferences: defined by the Cycles add-on, unknown to the stubs
        prefs: Any = addon.preferences if addon is not None else None
        for backend in _GPU_BACKENDS if prefs is not None else ():
            try:
                prefs.compute_device_type = backend
            except TypeError:  # backend not compiled in / not offered on this platform
                continue
            prefs.refresh_devices()
            devices = [d for d in prefs.devices if d.type == backend]
            if devices:
                for d in prefs.devices:
                    d.use = d.type == backend
                _cycles_device = "GPU"
                break
    return _cycles_device
