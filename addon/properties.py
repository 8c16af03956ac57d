"""Per-scene panel settings (``scene.derender``): the frame, the target and the script.

Results (target and candidate renders, rewards, stdout) are not stored here: they live in
``addon.session`` and in two images, because they are outputs, not user settings.
"""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, PointerProperty, StringProperty

from ..scenes import FrameSpec
from .preferences import ENGINE_ITEMS

_DEFAULT = FrameSpec()


class DerenderSceneSettings(bpy.types.PropertyGroup):
    engine: EnumProperty(  # type: ignore[valid-type]
        name="Engine", items=ENGINE_ITEMS, default=_DEFAULT.engine
    )
    width: IntProperty(  # type: ignore[valid-type]
        name="Width", default=_DEFAULT.width, min=16, max=4096
    )
    height: IntProperty(  # type: ignore[valid-type]
        name="Height", default=_DEFAULT.height, min=16, max=4096
    )
    samples: IntProperty(  # type: ignore[valid-type]
        name="Samples",
        description="EEVEE and Cycles samples",
        default=_DEFAULT.samples,
        min=1,
        max=4096,
    )
    seed: IntProperty(  # type: ignore[valid-type]
        name="Seed", description="Seed of the scene generator stream", default=0, min=0
    )
    index: IntProperty(  # type: ignore[valid-type]
        name="Index", description="Scene index within the seed's stream", default=0, min=0
    )
    scene_json: StringProperty(  # type: ignore[valid-type]
        name="Scene JSON",
        description="A CLEVR scene JSON file (one scene or a scenes file)",
        subtype="FILE_PATH",
    )
    json_index: IntProperty(  # type: ignore[valid-type]
        name="Scene", description="Which scene of a CLEVR scenes file", default=0, min=0
    )
    script: PointerProperty(  # type: ignore[valid-type]
        name="Script", description="Text datablock holding the agent program", type=bpy.types.Text
    )
    script_seed: IntProperty(  # type: ignore[valid-type]
        name="Script seed", description="The script's random seed", default=0, min=0
    )

    def frame_spec(self) -> FrameSpec:
        """The locked frame these settings describe (camera and lights stay CLEVR's)."""
        return FrameSpec(
            width=self.width, height=self.height, engine=self.engine, samples=self.samples
        )
