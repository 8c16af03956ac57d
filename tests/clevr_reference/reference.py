"""CLEVR's own renderer, ported to bpy 5.0: the reference derender's frame is measured against.

Run as a script in its own process (it opens CLEVR's ``base_scene.blend``, which replaces
the whole Blender state)::

    python tests/clevr_reference/reference.py SCENE.json OUT.png --width 480 --height 320 \
        --samples 128 --seed 0 [--masks OUT.npy]

It does what ``render_images.py`` of facebookresearch/clevr-dataset-gen does for one scene,
with the scene's objects instead of random ones and without jitter: open
``data/base_scene.blend``, append the ``Rubber`` and ``MyMetal`` node groups, set the
render arguments ``render_scene`` sets (Cycles, the resolution at 100 %, ``blur_glossy``
2.0, the sample count, transparent bounces 8/8), append each shape from ``data/shapes``
scaled by its size and moved to ``(x, y, z)`` (``utils.add_object``), give it a new
material whose output is the node group with ``Color`` set (``utils.add_material``) and
render. The cube keeps the nominal size: CLEVR's ``if obj_name == 'Cube'`` never fires
because the object is named ``SmoothCube_v2``. The files are found through
``$CLEVR_DATASET_GEN`` (default ``/work/clevr-dataset-gen``; the directory holding
``image_generation/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_ROOT = "/work/clevr-dataset-gen"


def data_dir() -> Path:
    """CLEVR's ``image_generation/data`` directory (it may not exist)."""
    root = Path(os.environ.get("CLEVR_DATASET_GEN", DEFAULT_ROOT))
    return root / "image_generation" / "data"


def missing_files() -> list[str]:
    """The CLEVR files the reference needs that are not there ([] when all are)."""
    data = data_dir()
    needed = ["base_scene.blend", "properties.json", "materials/Rubber.blend",
              "materials/MyMetal.blend", "shapes/SmoothCube_v2.blend", "shapes/Sphere.blend",
              "shapes/SmoothCylinder.blend"]  # fmt: skip
    return [str(data / n) for n in needed if not (data / n).is_file()]


def _append(path: Path, kind: str, name: str):
    import bpy

    with bpy.data.libraries.load(str(path), link=False) as (_src, dst):
        setattr(dst, kind, [name])
    return getattr(dst, kind)[0]


def _add_object(scene, data: Path, shape_file: str, scale: float, loc, theta: float):
    obj = _append(data / "shapes" / f"{shape_file}.blend", "objects", shape_file)
    scene.collection.objects.link(obj)
    obj.rotation_euler[2] = theta
    obj.scale = (scale, scale, scale)  # transform.resize about the origin at (0, 0, 0)
    obj.location = loc  # then transform.translate((x, y, scale))
    return obj


def _add_material(obj, group, rgba) -> None:
    import bpy

    mat = bpy.data.materials.new(f"Material_{len(bpy.data.materials)}")
    obj.data.materials.append(mat)
    tree = mat.node_tree
    output = next(n for n in tree.nodes if n.type == "OUTPUT_MATERIAL")
    node = tree.nodes.new("ShaderNodeGroup")
    node.node_tree = group
    node.inputs["Color"].default_value = rgba
    tree.links.new(node.outputs["Shader"], output.inputs["Surface"])


def render(scene_json: dict, out: Path, width: int, height: int, samples: int, seed: int,
           masks: Path | None) -> None:  # fmt: skip
    import bpy

    data = data_dir()
    bpy.ops.wm.open_mainfile(filepath=str(data / "base_scene.blend"))
    props = json.loads((data / "properties.json").read_text())
    groups = {
        name: _append(data / "materials" / f"{name}.blend", "node_groups", name)
        for name in props["materials"].values()
    }
    scene = bpy.context.scene
    r = scene.render
    r.engine = "CYCLES"
    r.filepath = str(out)
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    scene.cycles.blur_glossy = 2.0
    scene.cycles.samples = samples
    scene.cycles.seed = seed
    scene.cycles.device = "CPU"
    scene.cycles.min_transparent_bounces = 8  # 2.78: transparent_min_bounces
    scene.cycles.transparent_max_bounces = 8
    objects = []
    for o in scene_json["objects"]:
        scale = props["sizes"][o["size"]]
        x, y, *z = o["3d_coords"]
        loc = (x, y, z[0] if z else scale)
        obj = _add_object(scene, data, props["shapes"][o["shape"]], scale, loc, o["rotation"])
        rgba = [c / 255.0 for c in props["colors"][o["color"]]] + [1.0]
        _add_material(obj, groups[props["materials"][o["material"]]], rgba)
        objects.append(obj)
    bpy.ops.render.render(write_still=True)
    if masks is not None:
        import numpy as np
        from derender.addon.render import render_masks
        from derender.scenes.frame import FrameSpec

        ids = render_masks(objects, FrameSpec(width=width, height=height, engine="workbench"))
        np.save(masks, ids)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scene", type=Path, help="one CLEVR scene JSON")
    p.add_argument("out", type=Path, help="output PNG")
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--masks", type=Path, help="write the instance ids (.npy) here")
    args = p.parse_args(argv)
    missing = missing_files()
    if missing:
        print(f"CLEVR's files are missing: {missing}", file=sys.stderr)
        return 2
    scene = json.loads(args.scene.read_text())
    render(scene, args.out, args.width, args.height, args.samples, args.seed, args.masks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
