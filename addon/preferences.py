"""Add-on preferences: server address and keys, default frame, reward preset.

The add-on's id is the package that holds ``addon/``: ``derender`` when loaded from the
source tree, ``bl_ext.<repo>.derender`` when installed as an extension. ``settings()``
reads the preferences when the add-on is enabled through Blender and falls back to the
same defaults when ``derender.register()`` was called directly (tests, scripts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..reward.spec import DEFAULT_PRESET
from ..scenes.frame import ENGINES, default_engine

ADDON_ID = __package__.rpartition(".")[0]

ENGINE_ITEMS = [(e, e.capitalize() if e != "eevee" else "EEVEE", "") for e in ENGINES]
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5757


@dataclass(frozen=True)
class Settings:
    """The preference values the operators use, with or without an enabled add-on."""

    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    curve_dir: str = ""
    engine: str = field(default_factory=default_engine)
    width: int = 320
    height: int = 240
    preset: str = DEFAULT_PRESET
    unsandboxed: bool = False  # serve remote scripts where the OS sandbox cannot run

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"tcp://{host}:{self.port or '*'}"  # port 0: ZeroMQ picks a free one


# Blender keeps only weak references to enum item strings: hold them here.
_preset_items: list[tuple[str, str, str]] = []


def _preset_enum(_self: object, _context: object) -> list[tuple[str, str, str]]:
    from ..reward import PRESETS

    # A callback enum defaults to its first item: put the protocol's default first.
    names = sorted(PRESETS, key=lambda n: (n != DEFAULT_PRESET, n))
    if [i[0] for i in _preset_items] != names:
        _preset_items[:] = [(name, name, f"reward preset {name!r}") for name in names]
    return _preset_items


class DerenderPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    address: StringProperty(  # type: ignore[valid-type]
        name="Bind address",
        description="Address the ZeroMQ server binds; anything but loopback needs CURVE keys",
        default=DEFAULT_ADDRESS,
    )
    port: IntProperty(  # type: ignore[valid-type]
        name="Port",
        description="TCP port; 0 picks a free one",
        default=DEFAULT_PORT,
        min=0,
        max=65535,
    )
    curve_dir: StringProperty(  # type: ignore[valid-type]
        name="CURVE key directory",
        description="Directory holding server.key_secret and a clients/ folder with the "
        "accepted clients' .key files (made by `derender keys`); empty: no CURVE",
        subtype="DIR_PATH",
    )
    engine: EnumProperty(  # type: ignore[valid-type]
        name="Default engine", items=ENGINE_ITEMS, default=default_engine()
    )
    width: IntProperty(name="Width", default=320, min=16, max=4096)  # type: ignore[valid-type]
    height: IntProperty(name="Height", default=240, min=16, max=4096)  # type: ignore[valid-type]
    preset: EnumProperty(  # type: ignore[valid-type]
        name="Reward preset", items=_preset_enum
    )
    unsandboxed: BoolProperty(  # type: ignore[valid-type]
        name="Unsandboxed workers",
        description="Serve remote scripts even where the OS sandbox (bubblewrap, Linux "
        "only) cannot run. A script that escapes the language sandbox then runs as you: "
        "it can read and change your files, use your network and keep running. Only for "
        "clients you trust",
        default=False,
    )

    def draw(self, _context: bpy.types.Context) -> None:
        col = self.layout.column()
        col.prop(self, "address")
        col.prop(self, "port")
        col.prop(self, "curve_dir")
        row = col.row(align=True)
        row.prop(self, "engine")
        row.prop(self, "width")
        row.prop(self, "height")
        col.prop(self, "preset")
        box = col.box()
        box.prop(self, "unsandboxed")
        if self.unsandboxed:
            box.label(text="Remote scripts will run without the OS sandbox, as you.", icon="ERROR")


def settings(context: bpy.types.Context) -> Settings:
    addon = cast(bpy.types.Preferences, context.preferences).addons.get(ADDON_ID)
    if addon is None or addon.preferences is None:
        return Settings()
    p = addon.preferences
    return Settings(
        p.address, p.port, p.curve_dir, p.engine, p.width, p.height, p.preset, p.unsandboxed
    )
