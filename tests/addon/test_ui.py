"""Registration and the sidebar panels.

Headless Blender has no UI to draw into, so each panel's ``draw`` runs against a layout
recorder that checks every ``prop`` against the real RNA and every ``operator`` (and the
operator properties a button sets) against the registered operator, as Blender would,
and records the text shown. The state drawn is real: a built frame, a rendered target, a
scored script and a running server. (No GUI Blender >= 4.2 exists on this machine for a
screenshot test: Debian's package is 3.4.)
"""

from __future__ import annotations

import pytest
from derender.addon import registration, ui
from derender.addon.session import SESSION, server_tick
from derender.reward.spec import DEFAULT_PRESET
from derender.scenes import dsl_program


class _OpProps:
    def __init__(self, idname: str) -> None:
        import bpy

        module, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        object.__setattr__(self, "_props", rna.properties)

    def __setattr__(self, name: str, value: object) -> None:
        prop = self._props[name]  # KeyError: the operator has no such property
        if prop.type == "ENUM":
            assert value in prop.enum_items.keys(), (name, value)


class Layout:
    """Records what a panel draws; fails where Blender would reject a prop or operator."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def _sub(self, *_a: object, **_k: object) -> Layout:
        return Layout(self.log)

    column = row = box = grid_flow = _sub

    def separator(self, **_k: object) -> None:
        pass

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.log.append(text)

    def prop(self, data, name: str, **_k: object) -> None:
        assert name in data.bl_rna.properties.keys(), name
        self.log.append(f"prop:{name}")

    def template_ID(self, data, name: str, new: str = "", open: str = "") -> None:
        assert name in data.bl_rna.properties.keys(), name
        self.log.append(f"template_ID:{name}")

    def operator(self, idname: str, text: str = "", icon: str = "NONE") -> _OpProps:
        props = _OpProps(idname)
        self.log.append(f"op:{idname}")
        return props


def _draw(panel_cls, context) -> list[str]:
    log: list[str] = []
    panel = type("P", (), {"layout": Layout(log)})()
    panel_cls.draw(panel, context)
    return log


def test_panels_live_in_the_derender_sidebar_tab(derender_addon):
    bpy = derender_addon
    labels = []
    for cls in ui.CLASSES:
        registered = getattr(bpy.types, cls.__name__)
        assert cls.__name__.startswith("DERENDER_PT_")
        assert (registered.bl_space_type, registered.bl_region_type) == ("VIEW_3D", "UI")
        assert registered.bl_category == "derender"
        labels.append(registered.bl_label)
    assert labels == ["Frame", "Target", "Script", "Server"]


def test_panels_draw_the_session_state(derender_addon):
    bpy = derender_addon
    ctx = bpy.context
    before = {cls.bl_label: _draw(cls, ctx) for cls in ui.CLASSES}
    assert "op:derender.build_frame" in before["Frame"]
    assert not [x for x in before["Frame"] if x.startswith("Built:")]
    assert "op:derender.load_target" in before["Target"]
    assert before["Script"] == ["template_ID:script", "prop:script_seed", "op:derender.run_script"]
    assert "op:derender.server_start" in before["Server"]

    prefs = ctx.preferences.addons["derender"].preferences
    prefs.port = 0  # any free port
    assert bpy.ops.derender.load_target(source="SEED") == {"FINISHED"}
    text = bpy.data.texts.new("agent.py")
    scene = SESSION.target.scene
    text.from_string(dsl_program(scene) + "for i in range(20):\n    print('line', i)\n")
    ctx.scene.derender.script = text
    assert bpy.ops.derender.run_script() == {"FINISHED"}
    assert bpy.ops.derender.server_start() == {"FINISHED"}
    endpoint = SESSION.server.endpoints[0]
    try:
        after = {cls.bl_label: _draw(cls, bpy.context) for cls in ui.CLASSES}
    finally:
        bpy.ops.derender.server_stop()
    assert f"Built: workbench 64x64, frame {SESSION.frame.hash()}" in after["Frame"]
    assert any(x.startswith(SESSION.target.target_id) for x in after["Target"])
    script = after["Script"]
    assert "Outcome: ok" in script
    assert f"Reward ({DEFAULT_PRESET}): {SESSION.result.reward:.4f}" in script
    for name in SESSION.result.components:
        assert name in script
    assert "line 0" in script and "line 11" in script and "line 12" not in script
    assert "... 8 more lines" in script
    assert f"Serving {endpoint}" in after["Server"] and endpoint.startswith("tcp://127.0.0.1:")
    assert "Requests served: 0" in after["Server"]


def test_unregister_leaves_no_class_property_timer_or_handler(derender_addon):
    import addon_utils

    bpy = derender_addon
    ctx = bpy.context
    ctx.preferences.addons["derender"].preferences.port = 0
    assert bpy.ops.derender.build_frame() == {"FINISHED"}
    assert bpy.ops.derender.server_start() == {"FINISHED"}
    assert bpy.app.timers.is_registered(server_tick)
    assert registration._on_load_pre in bpy.app.handlers.load_pre

    addon_utils.disable("derender", default_set=True)
    assert not [n for n in dir(bpy.types) if n.startswith("DERENDER_")]
    with pytest.raises(AttributeError, match="could not be found"):
        bpy.ops.derender.build_frame()
    assert not hasattr(bpy.types.Scene, "derender")
    assert not bpy.app.timers.is_registered(server_tick)
    for name in dir(bpy.app.handlers):
        handlers = getattr(bpy.app.handlers, name)
        if isinstance(handlers, list):
            assert not [h for h in handlers if h.__module__.startswith("derender")], name
    assert SESSION.server is None and SESSION.handler is None
    addon_utils.enable("derender", default_set=True)  # the fixture disables it again


def test_loading_a_file_stops_the_server(derender_addon):
    bpy = derender_addon
    bpy.context.preferences.addons["derender"].preferences.port = 0
    assert bpy.ops.derender.server_start() == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    assert SESSION.server is None and SESSION.handler is None


@pytest.mark.parametrize(
    ("address", "port", "endpoint"),
    [
        ("127.0.0.1", 9, "tcp://127.0.0.1:9"),
        ("::1", 9, "tcp://[::1]:9"),
        ("127.0.0.1", 0, "tcp://127.0.0.1:*"),
    ],
)
def test_preferences_endpoint(address, port, endpoint):
    from derender.addon.preferences import Settings

    assert Settings(address=address, port=port).endpoint == endpoint
