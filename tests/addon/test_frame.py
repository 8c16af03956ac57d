"""The locked frame: built from the spec, checked by value, reset without leaks."""

from __future__ import annotations

from dataclasses import replace

import bpy
import numpy as np
import pytest
from derender.addon import assets, build, compat, frame_check, render
from derender.scenes import universe
from derender.scenes.generator import generate_scene
from derender.scenes.model import Scene, SceneObject
from derender.scenes.programs import bpy_program


@pytest.mark.parametrize("engine", ["workbench", "cycles", "eevee"])
def test_built_frame_matches_its_spec(built_frame, engine, spec_for):
    spec = spec_for(engine)
    built_frame.reset(spec)
    assert built_frame.differences(spec) == []
    scene = bpy.context.scene
    assert (
        scene.render.engine
        == {"workbench": "BLENDER_WORKBENCH", "cycles": "CYCLES", "eevee": "BLENDER_EEVEE"}[engine]
    )
    assert (scene.render.resolution_x, scene.render.resolution_y) == (64, 64)
    cam = scene.camera
    assert tuple(round(v, 4) for v in cam.location) == (7.4811, -6.5076, 5.3437)
    assert (cam.data.lens, cam.data.sensor_width, cam.data.sensor_height) == (35, 32, 18)
    names = {o.name for o in scene.objects}
    assert names == {"Camera", "Key", "Fill", "Back", "Sun", "Ground"}
    # another spec is a different frame
    other = replace(spec, width=32)
    assert built_frame.differences(other) == [
        f"the frame was built for spec {spec.hash()}, not {other.hash()}"
    ]


def test_engine_ids_for_this_blender():
    assert bpy.app.version[:2] == (5, 0)  # the pinned bpy; 4.2-4.4 use BLENDER_EEVEE_NEXT
    assert [compat.engine_id(e) for e in ("eevee", "workbench", "cycles")] == [
        "BLENDER_EEVEE",
        "BLENDER_WORKBENCH",
        "CYCLES",
    ]
    with pytest.raises(ValueError, match="'octane'"):
        compat.engine_id("octane")
    assert compat.cycles_device() in {"CPU", "GPU"}


def test_camera_matches_framespec_projection(built_frame, wb_frame):
    """Blender draws each object where FrameSpec.project (used for CLEVR's pixel_coords)
    says: the mask centroid of an isolated object is within 1.5 px of pixel_coords."""
    spec = wb_frame.with_size(160, 120)
    built_frame.reset(spec)
    placements = [(-2.0, -2.0), (2.5, 0.5), (0.0, 2.5), (-2.5, 1.5)]
    scene = Scene(
        tuple(SceneObject("sphere", "small", "rubber", "red", x, y) for x, y in placements)
    )
    masks = render.render_masks(build.build(scene), spec)
    for i, obj in enumerate(scene.objects, start=1):
        ys, xs = np.nonzero(masks == i)
        px, py, _ = spec.pixel_coords(obj.position)
        assert abs(xs.mean() + 0.5 - px) < 1.5 and abs(ys.mean() + 0.5 - py) < 1.5
    built_frame.reset(wb_frame)


def _tamper_camera_location():
    bpy.data.objects["Camera"].location.x += 0.5


def _tamper_lens():
    bpy.data.objects["Camera"].data.lens = 50.0


def _tamper_light_energy():
    bpy.data.objects["Key"].data.energy *= 3


def _tamper_light_deleted():
    bpy.data.objects.remove(bpy.data.objects["Fill"])


def _tamper_light_hidden():
    bpy.data.objects["Back"].hide_render = True


def _tamper_ground_color():
    bpy.data.materials["Ground"].node_tree.nodes["Principled BSDF"].inputs[
        "Base Color"
    ].default_value = (1, 0, 0, 1)


def _tamper_world():
    bpy.context.scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 9


def _tamper_world_unlinked():
    tree = bpy.context.scene.world.node_tree
    tree.links.remove(tree.links[0])  # the world renders black


def _tamper_ground_rewired():
    # a link moved from one socket to another (as many links as before) must show
    tree = bpy.data.materials["Ground"].node_tree
    output = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    surface = output.inputs["Surface"].links[0]
    source = surface.from_socket
    tree.links.remove(surface)
    tree.links.new(source, output.inputs["Volume"])


def _tamper_engine():
    bpy.context.scene.render.engine = "CYCLES"


def _tamper_resolution():
    bpy.context.scene.render.resolution_x = 640


def _tamper_samples():
    bpy.context.scene.display.render_aa = "32"


def _tamper_scene_camera():
    cam = bpy.data.objects.new("Spy", bpy.data.cameras.new("Spy"))
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam


def _tamper_view_transform():
    bpy.context.scene.view_settings.view_transform = "AgX"


def _tamper_parented_camera():
    bpy.ops.mesh.primitive_cube_add(location=(1, 1, 1))
    bpy.data.objects["Camera"].parent = bpy.context.object


def _tamper_rename():
    bpy.data.objects["Camera"].name = "Agent"


def _tamper_stamp():
    bpy.context.scene.render.use_stamp = True  # burns text into the image


def _tamper_light_type():
    bpy.data.objects["Key"].data.type = "POINT"  # lacks the area light's shape and size


def _tamper_bounces():
    bpy.context.scene.cycles.max_bounces = 0  # not a spec field: caught by the snapshot


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (_tamper_camera_location, "Object('Camera').location"),
        (_tamper_lens, "Camera('Camera').lens"),
        (_tamper_light_energy, "AreaLight('Key').energy"),
        (_tamper_light_deleted, "Object('Fill') is gone"),
        (_tamper_light_hidden, "Object('Back').hide_render"),
        (_tamper_ground_color, "Material('Ground').node_tree.nodes"),
        (_tamper_world, "World('World').node_tree.nodes"),
        (_tamper_world_unlinked, "World('World').node_tree.links"),
        (_tamper_ground_rewired, "Material('Ground').node_tree.links"),
        (_tamper_engine, "render.engine"),
        (_tamper_resolution, "render.resolution_x"),
        (_tamper_samples, "display.render_aa"),
        (_tamper_scene_camera, "Scene('Scene').camera"),
        (_tamper_view_transform, "view_settings.view_transform"),
        (_tamper_parented_camera, "Object('Camera').parent"),
        (_tamper_stamp, "render.use_stamp"),
        (_tamper_rename, "Object('Camera').name changed from 'Camera' to 'Agent'"),
        (_tamper_bounces, "cycles.max_bounces"),
        (_tamper_light_type, "AreaLight('Key').type changed from 'AREA' to 'POINT'"),
    ],
)
def test_tampering_is_reported_and_reset_repairs_it(built_frame, tamper, needle, wb_frame):
    empty = render.render_image(wb_frame)
    tamper()
    diffs = built_frame.differences(wb_frame)
    assert any(needle in d for d in diffs), diffs
    built_frame.reset(wb_frame)
    assert built_frame.differences(wb_frame) == []
    assert np.array_equal(render.render_image(wb_frame), empty)


def test_first_build_clears_the_startup_scene(built_frame, spec_for):
    """Headless ``import bpy`` starts with a cube, a light and a camera: not in the frame."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    assert "Cube" in bpy.data.objects
    spec = spec_for("workbench")
    built_frame.reset(spec)
    assert {o.name for o in bpy.data.objects} == {"Camera", "Key", "Fill", "Back", "Sun", "Ground"}
    assert "Cube" not in bpy.data.meshes and "Material" not in bpy.data.materials
    assert not bpy.context.scene.collection.children
    assert built_frame.differences(spec) == []


def test_tampering_does_not_survive_a_change_of_spec(built_frame, wb_frame, spec_for):
    bpy.context.scene.cycles.max_bounces = 0
    bpy.context.scene.render.use_stamp = True
    built_frame.reset(spec_for("cycles"))  # a new frame: its snapshot must not take the tamper
    assert bpy.context.scene.cycles.max_bounces != 0
    assert not bpy.context.scene.render.use_stamp
    assert built_frame.differences(spec_for("cycles")) == []


def _agent_litter() -> None:
    """What an agent script can leave behind: objects, data, images, texts, groups."""
    bpy.ops.mesh.primitive_monkey_add()
    mat = bpy.data.materials.new("agent")
    bpy.context.object.data.materials.append(mat)
    bpy.data.images.new("agent", 8, 8)
    bpy.data.texts.new("agent")
    bpy.data.node_groups.new("agent", "ShaderNodeTree")
    bpy.data.collections.new("agent")
    bpy.data.meshes.new("orphan")
    bpy.data.curves.new("agent", "CURVE")
    bpy.data.scenes.new("agent")
    light = bpy.data.objects.new("lamp", bpy.data.lights.new("lamp", "POINT"))
    bpy.context.scene.collection.objects.link(light)
    bpy.context.scene.view_layers.new("extra")
    bpy.context.scene.name = "agent scene"
    bpy.data.worlds["World"].name = "agent world"  # renamed frame data counts as foreign


def test_reset_removes_everything_foreign_and_keeps_assets(built_frame, wb_frame):
    build.add_object("cube", "large", "metal", "red", 0.0, 0.0)
    mesh, mat = assets.shape_mesh("cube"), assets.material("metal", "red")
    _agent_litter()
    foreign = [
        idb
        for name in (
            "objects",
            "materials",
            "images",
            "texts",
            "node_groups",
            "collections",
            "meshes",
            "curves",
            "scenes",
            "lights",
        )
        for idb in getattr(bpy.data, name)
        if not built_frame.owns(idb)
    ]
    assert len(foreign) >= 12
    assert built_frame.owns(mesh) and built_frame.owns(mat)
    assert built_frame.owns(bpy.data.objects["Camera"])
    built_frame.reset(wb_frame)
    assert built_frame.differences(wb_frame) == []
    assert {o.name for o in bpy.data.objects} == {"Camera", "Key", "Fill", "Back", "Sun", "Ground"}
    assert len(bpy.data.images) <= 1 and not bpy.data.texts
    assert all(assets.is_asset(group) for group in bpy.data.node_groups)  # CLEVR's surfaces
    assert not bpy.data.collections and not bpy.data.curves and len(bpy.data.scenes) == 1
    assert len(bpy.context.scene.view_layers) == 1
    assert (
        bpy.context.scene.name != "agent scene"
        and list(bpy.data.worlds) == [bpy.context.scene.world]
        and bpy.context.scene.world.name == "World"
    )
    assert assets.shape_mesh("cube") == mesh and assets.material("metal", "red") == mat


def test_edited_cached_material_does_not_leak(built_frame, wb_frame):
    spec = wb_frame
    obj = build.add_object("sphere", "large", "rubber", "blue", 0.0, 0.0)
    before = render.render_image(spec)
    obj.active_material.diffuse_color = (1.0, 0.0, 0.0, 1.0)
    built_frame.distrust()  # the edit stands for agent code, which the runner distrusts
    assert not np.array_equal(render.render_image(spec), before)
    built_frame.reset(spec)
    build.add_object("sphere", "large", "rubber", "blue", 0.0, 0.0)
    # what the service calls before every render
    assert assets.verify_in_use() == ["derender_blue_rubber"]
    assert np.array_equal(render.render_image(spec), before)


def _datablock_counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in frame_check._ID_COLLECTIONS}


def test_no_leak_after_100_scenes(built_frame, wb_frame):
    """The empty frame after 100 different scenes (trusted builds and bpy programs) is
    pixel-identical to the first one, with the same datablock counts."""
    spec = wb_frame
    for shape in universe.SHAPES:  # cached assets stay by design: make them all first
        assets.shape_mesh(shape)
    for material in universe.MATERIALS:
        for color in universe.COLORS:
            assets.material(material, color)
    render.render_image(spec)  # let Blender make its Render Result image first
    empty, counts = render.render_image(spec), _datablock_counts()
    cached = sorted(a.as_pointer() for a in assets.cached())
    for i in range(100):
        scene = generate_scene(1234, i)
        if i % 2:
            exec(bpy_program(scene), {"bpy": bpy, "clevr_material": assets.material})
        else:
            build.build(scene)
        if i % 10 == 0:
            render.render_image(spec)
        built_frame.reset(spec)
    assert _datablock_counts() == counts
    assert sorted(a.as_pointer() for a in assets.cached()) == cached  # reused, not rebuilt
    assert np.array_equal(render.render_image(spec), empty)


def test_a_new_built_frame_takes_over_and_the_old_one_refuses(built_frame, spec_for):
    """One bpy.data, one built frame: a second BuiltFrame (or Service) takes the frame over
    and removes the first one's build; the first one raises on every use from then on."""
    from derender.addon.frame import BuiltFrame, FrameTakenOver

    spec = spec_for("workbench")

    old_camera = bpy.data.objects["Camera"]
    old_uid = old_camera.session_uid
    newer = BuiltFrame(spec)
    assert newer.differences(spec) == []
    assert bpy.data.objects["Camera"].session_uid != old_uid  # rebuilt, not shared
    assert [o.name for o in bpy.data.objects].count("Camera") == 1
    for use in (
        lambda: built_frame.reset(spec),
        lambda: built_frame.differences(spec),
        lambda: built_frame.move(spec),
        lambda: built_frame.build(spec),
        lambda: built_frame.adopt_user_data(),
        lambda: built_frame.owns(bpy.data.objects["Camera"]),
    ):
        with pytest.raises(FrameTakenOver):
            use()
    assert newer.differences(spec) == []  # the refused calls changed nothing
    assert newer.owns(bpy.data.objects["Camera"])


def test_a_second_service_takes_the_frame_over(spec_for):
    """A Service owns its built frame; a newer Service in the process takes it over, and
    the older one refuses every request before touching Blender."""
    from derender.addon.frame import FrameTakenOver
    from derender.addon.service import Service

    spec = spec_for("workbench")
    first = Service(spec)
    assert first.step("x = 1").outcome == "ok"
    second = Service(spec)
    objects_before = {o.session_uid for o in bpy.data.objects}
    with pytest.raises(FrameTakenOver):
        first.step("x = 1")
    with pytest.raises(FrameTakenOver):
        first.render_scene(Scene((SceneObject("cube", "large", "rubber", "red", 0.0, 0.0),)))
    assert {o.session_uid for o in bpy.data.objects} == objects_before
    assert second.step("x = 1").outcome == "ok"
    assert second.built_frame.differences(spec) == []
