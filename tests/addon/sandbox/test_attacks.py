"""The attack suite: hostile or broken scripts, each with its typed outcome.

After every script the same process renders the empty frame pixel-identically (nothing
leaked) unless the result asked for the worker to be recycled. The scripts run with a
fresh empty working directory and must create no file anywhere they aim at.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from derender.scenes.model import Scene

V, T, R, E, S, OK = (
    "sandbox_violation", "timeout", "resource_limit", "runtime_error", "syntax_error", "ok",
)  # fmt: skip
# Files the file-touching attacks aim at (relative ones land in the test's cwd).
TARGETS = ("/tmp/derender-attack.blend", "/tmp/derender-attack.png", "attack.blend", "attack.png")
CUBE = "import bpy\nbpy.ops.mesh.primitive_cube_add()\nobj = bpy.context.object\n"
GEN = "def g():\n    yield 1\n"

ATTACKS: list[tuple[str, str, str]] = [
    # -- imports ------------------------------------------------------------------------
    ("import_os", "import os", V),
    ("import_subprocess", "import subprocess as sp", V),
    ("from_os_import", "from os import path", V),
    ("import_bmesh", "import bmesh", V),
    ("import_importlib", "import importlib", V),
    ("relative_import", "from . import secrets", V),
    ("dunder_import", "__import__('os')", V),
    ("builtins_name", "b = __builtins__", V),
    ("from_bpy_import_app", "from bpy import app", V),
    ("import_bpy_utils", "import bpy\nbpy.utils.register_class", V),
    ("open_builtin", "open('/etc/passwd')", E),  # not a builtin here: NameError
    ("eval_builtin", "eval('1')", V),
    ("exec_builtin", "exec('x = 1')", V),
    # -- dunder walks and introspection ----------------------------------------------------
    ("subclasses_walk", "().__class__.__bases__[0].__subclasses__()", V),
    ("getattr_dunder", "getattr((), '__cl' + 'ass__')", V),
    ("gi_frame_compile", GEN + "f = g().gi_frame.f_back", V),
    ("gi_frame_getattr", GEN + "f = getattr(g(), 'gi_' + 'frame')", V),
    ("format_field_dunder", "s = '{0.__class__}'.format(1)", V),
    ("format_gi_frame", GEN + "s = '{0.gi_frame}'.format(g())", V),
    ("str_format_unbound", "s = str.format('{0.__class__}', 1)", V),
    ("format_map_dunder", "s = '{x.__class__}'.format_map({'x': 1})", V),
    ("format_width_bomb", "s = '{:99999999999}'.format(1)", R),
    ("posonly_guard_shadow", "def f(_getattr_=None, /):\n    pass", V),
    ("guard_rebind", "_getattr_ = getattr", V),
    ("except_star", "try:\n    pass\nexcept* ValueError:\n    pass", V),
    (
        "str_subclass_name",
        "class S(str):\n    def startswith(self, p):\n        return False\n"
        "getattr(1, S('__class__'))",
        V,
    ),
    ("traceback_walk", "try:\n    1/0\nexcept Exception as e:\n    t = e.__traceback__", V),
    # -- Blender script-execution hooks ----------------------------------------------------
    ("driver_namespace", "import bpy\nbpy.app.driver_namespace['os'] = 1", V),
    ("driver_add", CUBE + "obj.driver_add('location', 0)", V),
    ("autoexec_pref", "import bpy\nbpy.context.preferences.filepaths.use_scripts_auto_execute = 1", V),
    ("text_new_module", "import bpy\nt = bpy.data.texts.new('x.py')\nt.use_module = True", V),
    ("text_load", "import bpy\nbpy.data.texts.load('/etc/passwd')", V),
    ("text_as_module", "import bpy\nbpy.data.texts['x'].as_module()", V),
    ("handlers", "import bpy\nbpy.app.handlers.render_pre.append(lambda *a: None)", V),
    ("timers", "import bpy\nbpy.app.timers.register(lambda: 1.0)", V),
    ("msgbus", "import bpy\nbpy.msgbus.subscribe_rna(key=None, owner=1, args=(), notify=print)", V),
    ("freestyle_enable", "import bpy\nbpy.context.scene.render.use_freestyle = True", V),
    ("freestyle_module", "import bpy\nbpy.context.view_layer.freestyle_settings.modules.new()", V),
    ("osl_script_node", "import bpy\nm = bpy.data.materials.new('m')\nm.node_tree.nodes.new('ShaderNodeScript')", V),
    ("node_links", "import bpy\nm = bpy.data.materials.new('m')\nm.node_tree.links.new", V),
    # -- files -------------------------------------------------------------------------------
    ("open_mainfile", "import bpy\nbpy.ops.wm.open_mainfile(filepath='/tmp/derender-attack.blend')", V),
    ("save_as_mainfile", "import bpy\nbpy.ops.wm.save_as_mainfile(filepath='attack.blend')", V),
    ("image_save_render", "import bpy\nbpy.data.images.new('i', 4, 4).save_render('attack.png')", V),
    (
        "render_filepath_write_still",
        "import bpy\nbpy.context.scene.render.filepath = '/tmp/derender-attack.png'\n"
        "bpy.ops.render.render(write_still=True)",
        V,
    ),
    ("render_op", "import bpy\nbpy.ops.render.render(write_still=True)", V),
    ("libraries_load", "import bpy\nbpy.data.libraries.load('/tmp/derender-attack.blend')", V),
    ("execute_preset", "import bpy\nbpy.ops.script.execute_preset(filepath='/etc/passwd', menu_idname='X')", V),
    ("path_open", "import bpy\nbpy.ops.wm.path_open(filepath='/')", V),
    ("addon_install", "import bpy\nbpy.ops.preferences.addon_install(filepath='attack.blend')", V),
    ("image_load", "import bpy\nbpy.data.images.load('/etc/hostname')", V),
    # -- time ----------------------------------------------------------------------------------
    ("while_true", "while True:\n    pass", T),
    ("while_true_bare_except", "try:\n    while True:\n        pass\nexcept:\n    pass", T),
    (
        "while_true_except_loop",
        "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n        pass",
        T,
    ),
    ("finally_return_swallow", "def f():\n    try:\n        while True:\n            pass\n    finally:\n        return 1\nf()", T),
    ("base_exception_name", "try:\n    while True:\n        pass\nexcept BaseException:\n    pass", T),
    ("exponential_lambda", "f = lambda n: 0 if n == 0 else f(n - 1) + f(n - 1)\nf(60)", T),
    ("comprehension_loop", "x = [i for i in range(10**7) for j in range(10**7)]", T),
    # -- memory and size -----------------------------------------------------------------------
    ("pow_tower", "x = 10**10**8", R),
    ("pow_builtin", "x = pow(10, 10**8)", R),
    ("lshift_bomb", "x = 1 << 10**10", R),
    ("aug_pow_bomb", "x = 10\nx **= 10**8", R),
    ("str_repeat_bomb", "x = 'x' * 10**12", R),
    ("list_repeat_bomb", "x = [0] * 10**12", R),
    ("range_sum_bomb", "x = sum(range(10**15))", R),
    ("vector_fill", "from mathutils import Vector\nv = Vector.Fill(10**9)", V),
    ("random_getrandbits", "import random\nx = random.getrandbits(10**10)", V),
    ("factorial", "import math\nx = math.factorial(10**7)", V),
    # -- geometry bombs ---------------------------------------------------------------------------
    ("sphere_1e7_segments", "import bpy\nbpy.ops.mesh.primitive_uv_sphere_add(segments=10**7)", R),
    (
        "sphere_vertex_budget",
        "import bpy\nbpy.ops.mesh.primitive_uv_sphere_add(segments=100000, ring_count=100000)",
        R,
    ),
    ("cylinder_1e7", "import bpy\nbpy.ops.mesh.primitive_cylinder_add(vertices=10**7)", R),
    ("subsurf_level_8", CUBE + "m = obj.modifiers.new('s', 'SUBSURF')\nm.levels = 8", R),
    ("subsurf_budget", "import bpy\nbpy.ops.mesh.primitive_uv_sphere_add(segments=1000, ring_count=500)\n"
     "m = bpy.context.object.modifiers.new('s', 'SUBSURF')\nm.levels = 3", R),  # fmt: skip
    ("bevel_segments_budget", "import bpy\nbpy.ops.mesh.primitive_uv_sphere_add(segments=500, ring_count=250)\n"
     "m = bpy.context.object.modifiers.new('b', 'BEVEL')\nm.segments = 100", R),  # fmt: skip
    ("array_modifier", CUBE + "obj.modifiers.new('a', 'ARRAY')", V),
    ("object_count", "for i in range(1000):\n    add_object('cube', 'small', 'metal', 'red', 0, 0)", R),
    ("enter_editmode", "import bpy\nbpy.ops.mesh.primitive_cube_add(enter_editmode=True)", V),
    ("subdivide_op", CUBE + "bpy.ops.mesh.subdivide(number_cuts=100)", V),
    # -- the frame ----------------------------------------------------------------------------------
    ("camera_remove", "import bpy\nbpy.data.objects.remove(bpy.data.objects['Camera'])", V),
    ("camera_move", "import bpy\nbpy.context.scene.camera.location = (0, 0, 10)", V),
    ("camera_by_name_move", "import bpy\nbpy.data.objects['Camera'].location.z += 5", V),
    ("camera_reparent", CUBE + "bpy.data.objects['Camera'].parent = obj", V),
    ("cameras_collection", "import bpy\nbpy.data.cameras[0].lens = 10", V),
    ("light_energy", "import bpy\nbpy.data.lights['Key'].energy = 0", V),
    ("light_object", "import bpy\nbpy.data.objects['Key'].hide_render = True", V),
    ("world_strength", "import bpy\nbpy.context.scene.world.node_tree.nodes['Background'].inputs[1].default_value = 9", V),
    ("worlds_collection", "import bpy\nbpy.data.worlds['World'].color = (1, 0, 0)", V),
    ("ground_material", "import bpy\nbpy.data.materials['Ground'].diffuse_color = (1, 0, 0, 1)", V),
    ("render_resolution", "import bpy\nbpy.context.scene.render.resolution_x = 8", V),
    ("scene_new", "import bpy\nbpy.data.scenes.new('other')", V),
    (
        "textured_plane_in_front_of_camera",
        "import bpy\nbpy.ops.mesh.primitive_plane_add(size=1, location=(6.5, -5.6, 4.6))\n"
        "m = bpy.data.materials.new('m')\nt = m.node_tree.nodes.new('ShaderNodeTexImage')",
        V,
    ),
    ("asset_material_edit", "add_object('cube', 'large', 'metal', 'red', 0, 0)\nimport bpy\n"
     "bpy.context.scene.objects[0].active_material.roughness = 0", E),  # fmt: skip
    # -- allowed, but must not touch the frame ----------------------------------------------------
    ("select_all_delete", CUBE + "bpy.ops.object.select_all(action='SELECT')\nbpy.ops.object.delete()", OK),
    ("rename_to_camera", CUBE + "obj.name = 'Camera'\nobj.location.z = 50", OK),
    # -- broken scripts ----------------------------------------------------------------------------
    ("syntax_error", "x = (1,\n", S),
    ("nul_byte", "x = 1\x00", S),
    ("runtime_zero_division", "x = 1\ny = x / 0", E),
    ("runtime_name_error", "type(1)", E),
    ("script_too_large", "x = 1\n" * 100_000, R),
]


def test_corpus_is_large_and_unique() -> None:
    names = [name for name, _, _ in ATTACKS]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.fixture(scope="module")
def attack_cwd(tmp_path_factory):
    """An empty working directory for the attacks; it must stay empty."""
    cwd = tmp_path_factory.mktemp("attack-cwd")
    old = os.getcwd()
    os.chdir(cwd)
    yield cwd
    os.chdir(old)


@pytest.mark.parametrize(("name", "script", "expected"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack(service, empty_image, attack_cwd: Path, name: str, script: str, expected: str):
    existing = {t for t in TARGETS if os.path.exists(t)}
    result = service.step(script, masks=False)
    assert result.outcome == expected, (result.outcome, result.message)
    if expected != OK:
        assert result.image is None and result.message
    assert result.recycle == (expected == V)
    # Nothing leaked: the same process renders the empty frame exactly as before.
    after = service.render_scene(Scene(()), masks=False).image
    assert np.array_equal(after, empty_image)
    assert list(attack_cwd.iterdir()) == []
    assert {t for t in TARGETS if os.path.exists(t)} == existing
