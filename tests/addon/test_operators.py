"""The panel's operators, headless in the bpy module, through ``bpy.ops.derender.*``.

They run the real service (sandbox, render) and the real reward, through the same protocol
handler a remote client gets; the server test talks to it over a real ZeroMQ socket. An
operator that reports ERROR makes ``bpy.ops`` raise RuntimeError with its message.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from derender.addon import frame_build
from derender.addon.operators import COMPARE_IMAGE, TARGET_IMAGE
from derender.addon.session import SCENE_NAME, SESSION
from derender.reward.spec import DEFAULT_PRESET
from derender.scenes import dsl_program, load_scenes

SAMPLE_JSON = Path(__file__).parent.parent / "data" / "clevr_scene_sample.json"


def _pixels(img) -> np.ndarray:
    w, h = img.size
    buf = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(buf)
    return np.round(buf.reshape(h, w, 4)[::-1, :, :3] * 255).astype(np.uint8)


def _image_editor(bpy):
    area = bpy.context.screen.areas[0]
    area.type = "IMAGE_EDITOR"
    return area.spaces.active


def _assert_binds_again(endpoint: str, within_s: float = 5.0) -> None:
    # ZeroMQ releases a closed socket's port from its I/O thread, shortly after close().
    deadline = time.monotonic() + within_s
    with zmq.Context.instance().socket(zmq.ROUTER) as sock:
        while True:
            try:
                sock.bind(endpoint)
                return
            except zmq.ZMQError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_build_frame_makes_the_locked_frame_in_its_own_scene(derender_addon):
    bpy = derender_addon
    user_scene = bpy.context.scene
    cube = bpy.data.objects.new("UserThing", None)
    user_scene.collection.objects.link(cube)
    assert bpy.ops.derender.build_frame() == {"FINISHED"}
    spec = SESSION.frame
    assert (spec.engine, spec.width, spec.height) == ("workbench", 64, 64)
    assert bpy.context.scene.name == SCENE_NAME
    assert bpy.context.scene.derender.frame_spec() == spec  # the panel shows what was built
    assert SESSION.handler.service.built_frame.differences(spec) == []
    assert "UserThing" in user_scene.objects and "UserThing" not in bpy.context.scene.objects


def test_failed_build_leaves_no_half_built_frame(derender_addon, monkeypatch):
    bpy = derender_addon

    def broken(scene, spec):
        raise RuntimeError("injected render-settings failure")

    monkeypatch.setattr(frame_build, "apply_render_settings", broken)
    before = {(type(i).__name__, i.name) for i in bpy.data.objects} | {
        ("Scene", s.name) for s in bpy.data.scenes
    }
    with pytest.raises(RuntimeError, match="Build frame failed: injected render-settings"):
        bpy.ops.derender.build_frame()
    after = {(type(i).__name__, i.name) for i in bpy.data.objects} | {
        ("Scene", s.name) for s in bpy.data.scenes
    }
    assert after == before  # camera, lights, ground and the derender scene were removed
    assert not bpy.data.cameras and not bpy.data.lights
    assert SESSION.handler is None


def test_load_target_from_seed_and_json_shows_it(derender_addon):
    bpy = derender_addon
    assert "IMAGE_EDITOR" not in [a.type for a in bpy.context.screen.areas]
    props = bpy.context.scene.derender
    props.seed, props.index = 3, 0
    assert bpy.ops.derender.load_target(source="SEED") == {"FINISHED"}
    target = SESSION.target
    assert target.image.shape == (64, 64, 3)
    assert target.image.std() > 0  # objects on a ground, not a blank frame
    img = bpy.data.images[TARGET_IMAGE]
    # No Image Editor was open: one was split off the 3D Viewport to show the target.
    editors = [a for a in bpy.context.screen.areas if a.type == "IMAGE_EDITOR"]
    assert len(editors) == 1 and editors[0].spaces.active.image == img
    np.testing.assert_array_equal(_pixels(img), target.image)

    props = bpy.context.scene.derender  # now the derender scene's settings
    props.scene_json = str(SAMPLE_JSON)
    assert bpy.ops.derender.load_target(source="JSON") == {"FINISHED"}
    expected = load_scenes(SAMPLE_JSON)[0]
    assert len(SESSION.target.scene.objects) == len(expected.objects)
    assert SESSION.target.target_id != target.target_id

    props.json_index = 5
    with pytest.raises(RuntimeError, match="index 5 is out of range"):
        bpy.ops.derender.load_target(source="JSON")
    props.scene_json = "/nonexistent/scene.json"
    with pytest.raises(RuntimeError, match="nonexistent"):
        bpy.ops.derender.load_target(source="JSON")


def test_random_target_picks_a_seed_and_loads_it(derender_addon):
    bpy = derender_addon
    assert bpy.ops.derender.random_target() == {"FINISHED"}
    props = bpy.context.scene.derender
    first = (props.seed, SESSION.target.target_id)
    assert bpy.ops.derender.random_target() == {"FINISHED"}
    assert (props.seed, SESSION.target.target_id) != first


def test_run_script_scores_the_ground_truth_and_keeps_the_text(derender_addon):
    bpy = derender_addon
    with pytest.raises(RuntimeError, match="choose a Text"):
        bpy.ops.derender.run_script()
    bpy.context.scene.derender.script = bpy.data.texts.new("early.py")
    with pytest.raises(RuntimeError, match="load a target first"):
        bpy.ops.derender.run_script()
    assert bpy.ops.derender.load_target(source="SEED") == {"FINISHED"}
    props = bpy.context.scene.derender
    text = bpy.data.texts.new("agent.py")  # made after the frame: the reset must spare it
    scene = SESSION.target.scene
    text.from_string(dsl_program(scene) + "print('hello from the agent')\n")
    props.script = text
    space = _image_editor(bpy)
    assert bpy.ops.derender.run_script() == {"FINISHED"}
    result = SESSION.result
    assert result.outcome == "ok", result.message
    assert result.stdout.strip() == "hello from the agent"
    assert result.components and 0.0 <= result.reward
    assert result.preset == DEFAULT_PRESET
    # target | render side by side; the ground truth reproduces the target.
    shown = _pixels(bpy.data.images[COMPARE_IMAGE])
    assert space.image.name == COMPARE_IMAGE and shown.shape == (64, 128, 3)
    np.testing.assert_array_equal(shown[:, :64], SESSION.target.image)
    np.testing.assert_array_equal(shown[:, 64:], result.image)
    assert np.abs(shown[:, 64:].astype(int) - shown[:, :64].astype(int)).mean() < 1.0
    kept = bpy.context.scene.derender.script
    assert kept is not None and "hello from the agent" in kept.as_string()

    kept.from_string("add_object(shape='cube',\n")
    assert bpy.ops.derender.run_script() == {"FINISHED"}  # a failed script is a result
    assert SESSION.result.outcome == "syntax_error"
    assert SESSION.result.line is not None


def test_the_persons_own_work_survives_runs_and_served_requests(derender_addon):
    from derender.protocol.client import Client

    bpy = derender_addon
    user_scene = bpy.context.scene
    assert bpy.ops.derender.load_target(source="SEED") == {"FINISHED"}
    # Made after the frame was built, in the person's own scene: must never be reset away.
    mesh = bpy.data.meshes.new("my_mesh")
    mine = bpy.data.objects.new("my_object", mesh)
    user_scene.collection.objects.link(mine)
    notes = bpy.data.texts.new("notes.txt")
    # Put on the frame's stage by hand: that is the agent's area and is cleared.
    staged = bpy.data.objects.new("stray", None)
    bpy.data.scenes[SCENE_NAME].collection.objects.link(staged)
    staged_name = staged.name

    text = bpy.data.texts.new("agent.py")
    text.from_string("add_object('sphere', 'small', 'metal', 'red', 0.0, 0.0)\n")
    bpy.context.scene.derender.script = text
    assert bpy.ops.derender.run_script() == {"FINISHED"}
    assert SESSION.result.outcome == "ok", SESSION.result.message

    prefs = bpy.context.preferences.addons["derender"].preferences
    prefs.port = 0
    assert bpy.ops.derender.server_start() == {"FINISHED"}
    server = SESSION.server
    later = bpy.data.materials.new("made_while_serving")
    replies = {}

    def client() -> None:
        with Client(server.endpoints[0], timeout=60) as c:
            replies["step"] = c.step("print(2)", c.reset(seed=0))

    client()  # the farm answers by itself; the panel only shows what it answered
    shown, deadline = 0, time.monotonic() + 30
    while shown < 2 and time.monotonic() < deadline:  # the monitor lags the reply a little
        shown += SESSION.show_served()
        time.sleep(0.05)
    assert shown == 2
    assert bpy.ops.derender.server_stop() == {"FINISHED"}
    assert replies["step"].outcome == "ok"

    assert bpy.data.objects.get("my_object") is not None
    assert bpy.data.meshes.get("my_mesh") is not None
    assert bpy.data.texts.get("notes.txt") is not None
    assert bpy.data.materials.get("made_while_serving") is not None
    assert staged_name not in bpy.data.objects
    assert SESSION.handler.service.built_frame.differences(SESSION.frame) == []
    del mine, notes, later


def test_server_start_serves_from_a_sandboxed_farm_and_shows_its_replies(derender_addon):
    from derender.addon.session import server_tick
    from derender.protocol.client import Client

    bpy = derender_addon
    prefs = bpy.context.preferences.addons["derender"].preferences
    prefs.port = 0  # any free port
    assert bpy.ops.derender.load_target(source="SEED") == {"FINISHED"}
    panel_target = SESSION.target.target_id
    assert bpy.ops.derender.server_start() == {"FINISHED"}
    server = SESSION.server
    assert bpy.app.timers.is_registered(server_tick)
    assert server.farm.status()["os_sandboxed"] is True  # remote scripts: never in here
    with pytest.raises(RuntimeError, match="already serving"):
        bpy.ops.derender.server_start()

    script = "print(1)\nadd_object('cube', 'large', 'metal', 'red', 0.5, -0.5)\n"
    with Client(server.endpoints[0], timeout=60) as c:
        target = c.reset(seed=0)
        step = c.step(script, target)
    assert target.target_id == panel_target  # the same scene in the same frame
    assert step.outcome == "ok" and step.stdout.strip() == "1"
    deadline = time.monotonic() + 30
    while server.handled < 2 and time.monotonic() < deadline:
        server_tick()  # headless Blender never fires timers: call it as Blender would
        time.sleep(0.05)  # the monitor's messages arrive a moment after the replies
    assert server.handled == 2
    assert SESSION.result.outcome == "ok" and SESSION.result.reward == step.reward
    assert SESSION.target.target_id == target.target_id
    # the script's read-back scene, rebuilt here by the trusted builder
    shown = [o for o in bpy.data.scenes[SCENE_NAME].objects if o.name.startswith("cube")]
    assert len(shown) == 1 and tuple(round(v, 3) for v in shown[0].location[:2]) == (0.5, -0.5)

    assert bpy.ops.derender.server_stop() == {"FINISHED"}
    assert SESSION.server is None and not bpy.app.timers.is_registered(server_tick)
    _assert_binds_again(server.endpoints[0])
    with pytest.raises(RuntimeError, match="not running"):
        bpy.ops.derender.server_stop()


def test_server_refuses_a_public_address_without_online_access(derender_addon):
    bpy = derender_addon
    assert not bpy.app.online_access  # headless default
    prefs = bpy.context.preferences.addons["derender"].preferences
    prefs.address = "0.0.0.0"
    with pytest.raises(RuntimeError, match="online access is disabled"):
        bpy.ops.derender.server_start()
    assert SESSION.server is None


def test_server_with_curve_keys_answers_only_known_clients(derender_addon, tmp_path):
    from derender.protocol.client import Client
    from derender.protocol.errors import ClientTimeout
    from derender.protocol.keys import create_keypair

    bpy = derender_addon
    create_keypair(tmp_path, "server")
    create_keypair(tmp_path / "clients", "agent")
    create_keypair(tmp_path / "stranger", "stranger")
    prefs = bpy.context.preferences.addons["derender"].preferences
    prefs.address, prefs.port, prefs.curve_dir = "0.0.0.0", 0, str(tmp_path)
    system = bpy.context.preferences.system
    system.use_online_access = True  # a public address needs it (loopback needs no keys)
    try:
        assert bpy.ops.derender.server_start() == {"FINISHED"}
    finally:
        system.use_online_access = False
    endpoint = SESSION.server.endpoints[0].replace("0.0.0.0", "127.0.0.1")
    outcome = {}

    def ping(name: str, keys: Path) -> None:
        try:
            with Client(
                endpoint, timeout=2, retries=0, server_key=tmp_path / "server.key", client_keys=keys
            ) as c:
                outcome[name] = c.ping() >= 0
        except ClientTimeout:
            outcome[name] = "no reply"

    for name, keys in (
        ("agent", tmp_path / "clients" / "agent.key_secret"),
        ("stranger", tmp_path / "stranger" / "stranger.key_secret"),
    ):
        ping(name, keys)
    bpy.ops.derender.server_stop()
    assert outcome == {"agent": True, "stranger": "no reply"}


def test_defaults_from_preferences_and_show_without_target(derender_addon):
    bpy = derender_addon
    prefs = bpy.context.preferences.addons["derender"].preferences
    prefs.engine, prefs.width, prefs.height = "cycles", 100, 80
    assert bpy.ops.derender.defaults_from_preferences() == {"FINISHED"}
    spec = bpy.context.scene.derender.frame_spec()
    assert (spec.engine, spec.width, spec.height) == ("cycles", 100, 80)
    assert prefs.preset == DEFAULT_PRESET  # the protocol's default preset comes first
    with pytest.raises(RuntimeError, match="no target is loaded"):
        bpy.ops.derender.show_image(which="TARGET")
