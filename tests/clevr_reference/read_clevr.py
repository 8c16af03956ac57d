"""Dump the values derender takes from CLEVR's ``.blend`` files as JSON (run as a script).

    python tests/clevr_reference/read_clevr.py OUT.json

It opens ``base_scene.blend`` (which replaces Blender's state: hence its own process) and
reads the camera, the lamps, the world and the ground, then each shape's vertices.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy
from mathutils import Vector
from reference import data_dir


def _object(name: str) -> dict:
    obj = bpy.data.objects[name]
    out = {
        "location": list(obj.matrix_world.translation),
        "forward": list(obj.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))),
        "rotation_euler": list(obj.rotation_euler),
        "visible_camera": obj.visible_camera,
    }
    data = obj.data
    if obj.type == "LIGHT":
        out |= {"type": data.type, "energy": data.energy, "color": list(data.color)}
        out |= {"size": data.size, "shape": data.shape} if data.type == "AREA" else {}
        out |= {"angle": data.angle} if data.type == "SUN" else {}
    elif obj.type == "CAMERA":
        out |= {"lens": data.lens, "sensor_width": data.sensor_width,
                "sensor_height": data.sensor_height, "sensor_fit": data.sensor_fit,
                "clip_start": data.clip_start, "clip_end": data.clip_end}  # fmt: skip
    elif obj.type == "MESH":
        sub = obj.modifiers[0]
        out |= {
            "vertices": [list(v.co) for v in data.vertices],
            "faces": [list(p.vertices) for p in data.polygons],
            "smooth": [p.use_smooth for p in data.polygons],
            "materials": [m.name if m else None for m in data.materials],
            "rotation_z": obj.rotation_euler[2],
            "subsurf": {k: getattr(sub, k) for k in ("levels", "render_levels", "quality",
                        "uv_smooth", "boundary_smooth", "use_limit_surface")},
        }  # fmt: skip
    return out


def main(out: Path) -> None:
    data = data_dir()
    bpy.ops.wm.open_mainfile(filepath=str(data / "base_scene.blend"))
    world = bpy.data.worlds["World"]
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    dump = {
        "camera": _object("Camera"),
        "lamps": {n: _object(n) for n in ("Lamp_Key", "Lamp_Fill", "Lamp_Back", "Area")},
        "world": {
            "color": list(background.inputs["Color"].default_value)[:3],
            "strength": background.inputs["Strength"].default_value,
        },
        "ground": _object("Ground"),
        "shapes": {},
    }
    for name in ("SmoothCube_v2", "Sphere", "SmoothCylinder"):
        bpy.ops.wm.open_mainfile(filepath=str(data / "shapes" / f"{name}.blend"))
        mesh = bpy.data.objects[name].data
        dump["shapes"][name] = [list(v.co) for v in mesh.vertices]
    out.write_text(json.dumps(dump))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
