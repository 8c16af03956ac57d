"""register()/unregister() of the Blender extension: classes, scene settings, handlers.

``unregister`` undoes all of it: the GUI server and its timers stop, the load handler and
``Scene.derender`` go, and every class is unregistered (tests check that nothing remains).
"""

from __future__ import annotations

from collections.abc import Callable

import bpy
from bpy.app.handlers import persistent
from bpy.props import PointerProperty

from . import operators, ui
from .preferences import DerenderPreferences
from .properties import DerenderSceneSettings
from .session import SESSION

CLASSES = (DerenderPreferences, DerenderSceneSettings, *operators.CLASSES, *ui.CLASSES)

# the stubs say register_classes_factory returns None; it returns (register, unregister)
_register_classes: Callable[[], None]
_unregister_classes: Callable[[], None]
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)  # type: ignore[func-returns-value,misc]


@persistent
def _on_load_pre(*_args: object) -> None:
    # The session's frame and server belong to the file being closed.
    SESSION.close()


def register() -> None:
    _register_classes()
    # a runtime-registered property, unknown to the stubs (whose PointerProperty returns None)
    bpy.types.Scene.derender = PointerProperty(type=DerenderSceneSettings)  # type: ignore[attr-defined,func-returns-value]
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    SESSION.close()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if hasattr(bpy.types.Scene, "derender"):
        del bpy.types.Scene.derender
    _unregister_classes()
