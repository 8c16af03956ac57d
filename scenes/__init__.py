"""The CLEVR universe, the Scene model, CLEVR JSON, the generator and the program writer.

Pure Python + numpy: nothing here knows about bpy (the renderer is an adapter in addon/).
"""

from .clevr_json import (
    dump_scenes,
    load_scenes,
    scene_from_clevr,
    scene_from_json,
    scene_to_clevr,
    scene_to_json,
)
from .frame import Camera, FrameSpec, Light
from .generator import (
    GenerationError,
    GeneratorConfig,
    enough_pixels,
    generate_scene,
    generate_scenes,
)
from .model import Scene, SceneObject
from .programs import bpy_program, dsl_program, write_program
from .relations import relationships

__all__ = [
    "Camera",
    "FrameSpec",
    "GenerationError",
    "GeneratorConfig",
    "Light",
    "Scene",
    "SceneObject",
    "bpy_program",
    "dsl_program",
    "dump_scenes",
    "enough_pixels",
    "generate_scene",
    "generate_scenes",
    "load_scenes",
    "relationships",
    "scene_from_clevr",
    "scene_from_json",
    "scene_to_clevr",
    "scene_to_json",
    "write_program",
]
