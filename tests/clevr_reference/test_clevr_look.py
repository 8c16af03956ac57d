"""derender's frame against CLEVR's original files (facebookresearch/clevr-dataset-gen).

The files are not in the repository and the tests fetch nothing: they skip, saying so,
unless ``$CLEVR_DATASET_GEN`` (default ``/work/clevr-dataset-gen``) holds them. The value
tests are fast; the renders (480x320, Cycles at 128 samples on both sides, the acceptance
of issue 18) take minutes and run with ``-m reference`` (EEVEE's also with ``-m eevee``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import bpy  # noqa: F401  (before bmesh and mathutils, which derender.addon imports)
import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import compare  # noqa: E402
from reference import missing_files  # noqa: E402

pytestmark = pytest.mark.skipif(
    bool(missing_files()), reason=f"CLEVR's files are absent: {missing_files()[:1]}"
)


@pytest.fixture(scope="module")
def clevr() -> dict:
    """CLEVR's values, read by ``read_clevr.py`` in its own Blender process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clevr.json"
        cmd = [sys.executable, str(HERE / "read_clevr.py"), str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        return json.loads(out.read_text())


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def test_the_frame_is_base_scene_blend(clevr):
    from derender.addon.frame_parts import CLIP_END
    from derender.scenes import FrameSpec, backdrop

    spec = FrameSpec()
    cam = clevr["camera"]
    assert spec.camera.location == pytest.approx(cam["location"], abs=1e-6)
    assert _unit(np.subtract(spec.camera.target, spec.camera.location)) == pytest.approx(
        cam["forward"], abs=1e-6
    )
    assert (spec.camera.lens, spec.camera.sensor_width, spec.camera.sensor_height) == (
        cam["lens"], cam["sensor_width"], cam["sensor_height"],
    )  # fmt: skip
    assert cam["sensor_fit"] == "AUTO" and CLIP_END == pytest.approx(cam["clip_end"])
    lights = {lt.name: lt for lt in spec.lights}
    for name, lamp in (("Key", "Lamp_Key"), ("Fill", "Lamp_Fill"), ("Back", "Lamp_Back")):
        want, got = clevr["lamps"][lamp], lights[name]
        assert got.kind == want["type"] == "AREA" and want["shape"] == "SQUARE"
        assert got.location == pytest.approx(want["location"], abs=1e-6)
        assert _unit(np.subtract(got.target, got.location)) == pytest.approx(
            want["forward"], abs=1e-6
        )
        assert (got.strength, got.size) == pytest.approx((want["energy"], want["size"]), rel=1e-6)
        assert got.color == pytest.approx(want["color"], abs=1e-6)
        assert not want["visible_camera"]
    sun, want = lights["Sun"], clevr["lamps"]["Area"]  # CLEVR's sun is named "Area"
    assert sun.kind == want["type"] == "SUN"
    assert _unit(np.subtract(sun.target, sun.location)) == pytest.approx(want["forward"], abs=1e-6)
    assert (sun.strength, sun.size) == pytest.approx((want["energy"], want["angle"]), rel=1e-6)
    assert spec.world_color == pytest.approx(clevr["world"]["color"], abs=1e-6)
    assert spec.world_strength == clevr["world"]["strength"] == 0.0
    ground = clevr["ground"]
    assert np.asarray(backdrop.vertices()) == pytest.approx(
        np.asarray(ground["vertices"]), abs=1e-7
    )
    assert sorted(backdrop.faces()) == sorted(tuple(f) for f in ground["faces"])  # and winding
    assert not any(ground["smooth"]) and ground["materials"] == []
    assert backdrop.LOCATION == pytest.approx(ground["location"], abs=1e-6)
    assert backdrop.ROTATION_Z == pytest.approx(ground["rotation_z"], abs=1e-7)
    assert dict(backdrop.SUBSURF) == ground["subsurf"]


def _surface_distance(points: np.ndarray, mesh) -> float:
    """Largest distance from ``points`` to the surface of ``mesh`` (a bpy Mesh)."""
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    tree = BVHTree.FromPolygons([v.co for v in mesh.vertices], [p.vertices for p in mesh.polygons])
    return max(tree.find_nearest(Vector(p))[3] for p in points)


@pytest.mark.parametrize(
    ("shape", "name", "tolerance"),
    [
        ("cube", "SmoothCube_v2", 6e-3),
        ("sphere", "Sphere", 5e-3),
        ("cylinder", "SmoothCylinder", 7e-3),
    ],
)
def test_shapes_lie_on_clevrs_meshes(clevr, shape, name, tolerance):
    """Every vertex of CLEVR's unit mesh lies within ``tolerance`` of derender's surface
    (for a large object 0.7 x that: at most ~0.25 px at 480x320), and the extents agree."""
    from derender.addon import assets
    from derender.addon.frame import BuiltFrame
    from derender.scenes import FrameSpec

    BuiltFrame(FrameSpec(width=32, height=32, engine="workbench", samples=1))
    mesh = assets.shape_mesh(shape)
    points = np.asarray(clevr["shapes"][name])
    assert _surface_distance(points, mesh) <= tolerance
    ours = np.array([v.co[:] for v in mesh.vertices])
    assert np.abs(ours).max(axis=0) == pytest.approx(np.abs(points).max(axis=0), abs=2e-3)


def _acceptance(engine: str, samples: int) -> list[tuple[str, compare.Measure]]:
    out = []
    for name, scene in compare.scenes():
        with tempfile.TemporaryDirectory() as tmp:
            ref, ref_masks = compare.reference(scene, 128, 0, Path(tmp))
        image, masks = compare.derender(scene, engine, samples, 0)
        out.append((name, compare.measure(image, ref, masks, ref_masks)))
    return out


@pytest.mark.reference
def test_cycles_renders_as_clevr():
    """Issue 18's acceptance: Cycles, 480x320, 128 samples and seed 0 on both sides, on
    CLEVR_val_000000 and 3 seeded scenes (the reference against itself with another seed:
    MAE 1.93, 0.49 after 4x4 averaging)."""
    for name, m in _acceptance("cycles", 128):
        assert m.mae <= 3.0 and m.mae4 <= 1.5, (name, m)
        assert m.min_iou >= 0.95, (name, m)


@pytest.mark.reference
@pytest.mark.eevee
def test_eevee_approximates_clevr():
    for name, m in _acceptance("eevee", 64):
        assert m.mae4 <= 6.0 and m.min_iou >= 0.95, (name, m)


def test_reference_and_derender_place_objects_alike():
    """A cheap end-to-end check that always runs with the files: Workbench masks of the
    real CLEVR_val_000000 agree with the reference renderer's (IoU per object)."""
    name, scene = compare.scenes()[0]
    assert name == "CLEVR_val_000000" and math.isclose(
        scene["objects"][1]["3d_coords"][2], 0.7, abs_tol=1e-6
    )
    with tempfile.TemporaryDirectory() as tmp:
        _, ref_masks = compare.reference(scene, 1, 0, Path(tmp))
    _, masks = compare.derender(scene, "workbench", 1, 0)
    assert compare.min_iou(masks, ref_masks) >= 0.95
