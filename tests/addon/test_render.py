"""Rendering: readback, masks, visibility, determinism, golden images, the CLI.

Golden images (``golden/``) hold one fixed scene per engine at 96x72; the tolerance is
documented in ``golden/README.md``. Regenerate them (after an intended change only) with
``.venv/bin/python tests/addon/test_render.py --regen`` and look at them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np
import pytest
from derender.addon import build, render
from derender.addon.frame import BuiltFrame
from derender.cli import main as cli_main
from derender.scenes.clevr_json import scene_to_json
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import GeneratorConfig, generate_scene
from derender.scenes.model import Scene, SceneObject
from PIL import Image

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_SCENE = Scene((
    SceneObject("cube", "large", "metal", "yellow", -1.2, -0.8, 0.6),
    SceneObject("sphere", "large", "rubber", "blue", 1.4, 1.0),
    SceneObject("cylinder", "small", "metal", "red", 1.6, -1.6, 0.3),
    SceneObject("sphere", "small", "metal", "cyan", -0.6, 1.8),
    SceneObject("cube", "small", "rubber", "green", 0.2, -2.6, 1.1),
))  # fmt: skip
GOLDEN_SPECS = {
    "workbench": FrameSpec(96, 72, "workbench", samples=8),
    "cycles": FrameSpec(96, 72, "cycles", samples=32, seed=3),
    "eevee": FrameSpec(96, 72, "eevee", samples=4),
}
# Documented tolerance (golden/README.md): renders may drift across CPUs/GL drivers.
GOLDEN_MEAN_ABS = 1.0
GOLDEN_BAD_FRACTION = 0.005  # pixels off by more than 16 levels in any channel


def _render_scene(built_frame: BuiltFrame, scene: Scene, spec: FrameSpec) -> np.ndarray:
    built_frame.reset(spec)
    build.build(scene)
    image = render.render_image(spec)
    built_frame.reset(spec)
    return image


def test_render_image_is_rgb_uint8_top_row_first(wb_frame):
    spec = wb_frame
    empty = render.render_image(spec)
    assert empty.shape == (64, 64, 3) and empty.dtype == np.uint8
    # an object right in front of the camera, low in the image: changes the bottom rows
    build.add_object("sphere", "small", "rubber", "red", 3.5, -3.2)
    changed = np.nonzero(np.any(render.render_image(spec) != empty, axis=2))[0]
    assert changed.size and changed.min() > 32


def test_render_image_rejects_a_frame_that_does_not_match_the_spec(wb_frame):
    bpy.context.scene.render.resolution_x = 32
    with pytest.raises(render.RenderFailed, match="32x64"):
        render.render_image(wb_frame)


def test_masks_number_objects_in_order_and_restore_everything(built_frame, wb_frame):
    spec = wb_frame.with_size(128, 96)
    built_frame.reset(spec)
    scene = generate_scene(11, 3)
    objects = build.build(scene)
    stray = build.add_object("sphere", "large", "metal", "red", -2.5, -2.5)  # not listed
    colors = [tuple(o.color) for o in bpy.context.scene.objects]
    before = render.render_image(spec)
    masks = render.render_masks(objects, spec)
    assert masks.shape == (96, 128) and masks.dtype == np.int32
    assert set(np.unique(masks)) <= set(range(len(objects) + 1))
    assert (masks > 0).sum() > 0 and (masks == 0).sum() > masks.size // 2
    for i, obj in enumerate(scene.objects, start=1):  # each id sits near its object
        if (masks == i).sum() > 20:
            ys, xs = np.nonzero(masks == i)
            px, py, _ = spec.pixel_coords(obj.position)
            assert abs(np.median(xs) - px) < 12 and abs(np.median(ys) - py) < 12
    stray_only = render.render_masks([stray], spec)
    assert (stray_only == 1).sum() > 50 and set(np.unique(stray_only)) == {0, 1}
    assert built_frame.differences(spec) == []
    assert [tuple(o.color) for o in bpy.context.scene.objects] == colors
    assert np.array_equal(render.render_image(spec), before)
    built_frame.reset(wb_frame)


def test_visibility_check_rejects_hidden_objects(built_frame, wb_frame):
    check = render.visibility_check(built_frame, wb_frame.with_size(160, 120))
    apart = Scene(
        (
            SceneObject("cube", "large", "rubber", "red", 0.0, 0.0),
            SceneObject("sphere", "large", "rubber", "blue", -2.0, 2.0),
        )
    )
    # a small sphere right behind a large cube, on the camera's line of sight
    hidden = Scene(
        (
            SceneObject("cube", "large", "rubber", "red", 0.0, 0.0),
            SceneObject("sphere", "small", "rubber", "blue", -1.2, 1.05),
        )
    )
    assert check(apart) is True
    assert check(hidden) is False
    config = GeneratorConfig(frame=wb_frame.with_size(160, 120))
    assert len(generate_scene(3, 0, config, visible=check)) >= 3
    assert built_frame.differences(wb_frame.with_size(160, 120)) == []
    built_frame.reset(wb_frame)


@pytest.mark.parametrize("engine", ["workbench", "cycles"])
def test_same_scene_twice_is_identical(built_frame, engine, spec_for):
    spec = spec_for(engine)
    scene = generate_scene(9, 2)
    first = _render_scene(built_frame, scene, spec)
    _render_scene(built_frame, generate_scene(9, 3), spec)  # something else in between
    assert np.array_equal(_render_scene(built_frame, scene, spec), first)
    if engine == "cycles":  # the seed really is the spec's
        assert not np.array_equal(_render_scene(built_frame, scene, replace(spec, seed=8)), first)


def test_render_dirs_of_dead_processes_are_swept(built_frame, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"derender-render-{dead.pid}-abc").mkdir()
    (tmp_path / f"derender-render-{dead.pid}-abc" / "render.png").write_bytes(b"x")
    (tmp_path / f"derender-render-{os.getpid()}-def").mkdir()  # alive: kept
    (tmp_path / "derender-render-legacy").mkdir()  # no pid in the name: not ours to judge
    (tmp_path / "unrelated").mkdir()
    assert render.sweep_dead_render_dirs(str(tmp_path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"derender-render-{os.getpid()}-def", "derender-render-legacy", "unrelated"]
    )


_OTHER_PROCESS = """
import sys, numpy as np
from derender.addon import build, render
from derender.addon.frame import BuiltFrame
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import generate_scene
built_frame = None
for i, spec in enumerate(FrameSpec.from_dict(d) for d in {specs!r}):
    if built_frame is None:
        built_frame = BuiltFrame(spec)
    built_frame.reset(spec)
    build.build(generate_scene(9, 2))
    np.save(sys.argv[1] + f"/{{i}}.npy", render.render_image(spec))
"""


def test_two_processes_render_identically(built_frame, tmp_path, spec_for):
    specs = [spec_for("workbench"), spec_for("cycles")]
    code = _OTHER_PROCESS.format(specs=[s.to_dict() for s in specs])
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True, timeout=300
    )
    for i, spec in enumerate(specs):
        assert np.array_equal(
            np.load(tmp_path / f"{i}.npy"), _render_scene(built_frame, generate_scene(9, 2), spec)
        ), spec.engine


@pytest.mark.eevee
def test_eevee_is_deterministic_within_tolerance(built_frame, spec_for):
    """EEVEE (software GL here): two renders differ by at most 2 levels per channel."""
    spec = spec_for("eevee")
    scene = generate_scene(9, 2)
    a, b = _render_scene(built_frame, scene, spec), _render_scene(built_frame, scene, spec)
    assert np.abs(a.astype(int) - b).max() <= 2


def _check_golden(built_frame: BuiltFrame, engine: str) -> None:
    spec = GOLDEN_SPECS[engine]
    image = _render_scene(built_frame, GOLDEN_SCENE, spec)
    golden = np.asarray(Image.open(GOLDEN_DIR / f"{engine}.png").convert("RGB"))
    diff = np.abs(image.astype(int) - golden)
    assert diff.mean() <= GOLDEN_MEAN_ABS, f"{engine}: mean abs diff {diff.mean():.3f}"
    bad = (diff.max(axis=2) > 16).mean()
    assert bad <= GOLDEN_BAD_FRACTION, f"{engine}: {bad:.2%} of pixels off by > 16"


@pytest.mark.parametrize("engine", ["workbench", "cycles"])
def test_golden_image(built_frame, engine):
    _check_golden(built_frame, engine)


@pytest.mark.eevee
def test_golden_image_eevee(built_frame):
    _check_golden(built_frame, "eevee")


def test_cli_renders_a_scene_file_with_masks(tmp_path, capsys):
    scene = generate_scene(4, 0)
    path = tmp_path / "scene.json"
    path.write_text(scene_to_json(scene))
    out = tmp_path / "out.png"
    argv = [
        "render",
        str(path),
        "--out",
        str(out),
        "--engine",
        "workbench",
        "--size",
        "64",
        "--masks",
    ]
    assert cli_main(argv) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 64, 3)
    spec = FrameSpec(64, 64, "workbench")
    # the command built its own frame in this process: take it over to compare
    assert np.array_equal(image, _render_scene(BuiltFrame(spec), scene, spec))
    masks = np.asarray(Image.open(tmp_path / "out.masks.png"))
    assert masks.shape == (64, 64) and len(np.unique(masks)) > 2
    assert "wrote" in capsys.readouterr().out


def test_cli_renders_non_square_sizes_and_writes_the_exact_frame(tmp_path):
    scene = generate_scene(4, 0, GeneratorConfig(jitter=True))  # carries its camera
    path = tmp_path / "scene.json"
    path.write_text(scene_to_json(scene))
    out = tmp_path / "out.png"
    argv = ["render", str(path), "--out", str(out), "--engine", "workbench",
            "--size", "96x64", "--samples", "5"]  # fmt: skip
    assert cli_main(argv) == 0
    written = json.loads(out.with_suffix(".frame.json").read_text())
    spec = FrameSpec.from_dict(written["frame"])
    assert (spec.width, spec.height, spec.samples) == (96, 64, 5)
    assert (
        spec
        == FrameSpec(96, 64, "workbench", 5).posed(scene.extra)
        != FrameSpec(96, 64, "workbench", 5)
    )  # rendered from the scene's jittered camera and lights
    assert written["frame_hash"] == spec.hash()
    assert np.array_equal(np.asarray(Image.open(out)), _render_scene(BuiltFrame(spec), scene, spec))


def test_cli_frame_presets_and_a_clevr_scene_in_its_own_camera(tmp_path):
    sample = Path(__file__).parents[1] / "data" / "clevr_scene_sample.json"
    out = tmp_path / "val0.png"
    argv = ["render", str(sample), "--out", str(out), "--frame", "clevr", "--engine",
            "workbench", "--fit-camera"]  # fmt: skip
    assert cli_main(argv) == 0
    spec = FrameSpec.from_dict(json.loads(out.with_suffix(".frame.json").read_text())["frame"])
    assert (spec.width, spec.height, spec.engine) == (480, 320, "workbench")
    scene = json.loads(sample.read_text())
    for o in scene["objects"]:  # CLEVR's jittered camera, recovered: its pixel_coords exactly
        assert list(spec.pixel_coords(tuple(o["3d_coords"]))[:2]) == o["pixel_coords"][:2]
    assert np.asarray(Image.open(out)).shape == (320, 480, 3)
    rl = tmp_path / "rl.png"
    assert cli_main(["render", str(sample), "--out", str(rl), "--frame", "clevr-rl"]) == 0
    assert np.asarray(Image.open(rl)).shape == (128, 128, 3)


@pytest.mark.parametrize("size", ["0x10", "12xx", "wide"])
def test_cli_bad_size_exits_2(tmp_path, capsys, size):
    path = tmp_path / "scene.json"
    path.write_text(scene_to_json(generate_scene(4, 0)))
    argv = ["render", str(path), "--out", str(tmp_path / "o.png"), "--engine", "workbench",
            "--size", size]  # fmt: skip
    assert cli_main(argv) == 2
    assert "--size" in capsys.readouterr().err


def test_cli_contact_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    argv = ["render", "--sheet", "4", "--engine", "workbench", "--size", "48", "--out", str(out)]
    assert cli_main(argv) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (96, 96, 3)
    tiles = [sheet[r : r + 48, c : c + 48] for r in (0, 48) for c in (0, 48)]
    assert all(not np.array_equal(tiles[0], t) for t in tiles[1:])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not a CLEVR scene"),
        (json.dumps({"objects": [{"shape": "cone"}]}), "is not a CLEVR scene"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(tmp_path, capsys, content, message):
    path = tmp_path / "scene.json"
    if content is not None:
        path.write_text(content)
    assert cli_main(["render", str(path), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "scene.json" in err
    assert not (tmp_path / "o.png").exists()


def _regenerate_goldens() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    built_frame = BuiltFrame(GOLDEN_SPECS["workbench"])
    for engine, spec in GOLDEN_SPECS.items():
        image = _render_scene(built_frame, GOLDEN_SCENE, spec)
        Image.fromarray(image).save(GOLDEN_DIR / f"{engine}.png")
        print(f"wrote {GOLDEN_DIR / engine}.png")


if __name__ == "__main__" and sys.argv[1:] == ["--regen"]:
    _regenerate_goldens()
