"""The frame's render settings: what the spec fixes.

:func:`spec_settings` names the settings a :class:`FrameSpec` decides (engine, samples,
resolution, seed, colour management …) and :func:`apply` sets them. Every other render
property keeps the value the build left, and the frame's generic snapshot
(``addon.frame``) reports a change to any of them.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..scenes.frame import FrameSpec
from . import compat

_WORKBENCH_AA: tuple[tuple[int, str], ...] = (
    (1, "OFF"), (5, "5"), (8, "8"), (11, "11"), (16, "16"), (32, "32"),
)  # fmt: skip
_TOL = 1e-5


# CLEVR's Cycles settings: base_scene.blend as Blender 5.0 reads it, with what
# render_images.py sets on top (blur_glossy 2.0, transparent bounces 8/8; its 512 samples
# are FrameSpec.samples of the "clevr" preset). Where 5.0's defaults differ from the file
# (clamping, the light threshold and tree, the sampling pattern) the file wins.
CLEVR_CYCLES: dict[str, Any] = {
    "cycles.blur_glossy": 2.0,
    "cycles.min_transparent_bounces": 8,
    "cycles.transparent_max_bounces": 8,
    "cycles.max_bounces": 12,
    "cycles.diffuse_bounces": 4,
    "cycles.glossy_bounces": 4,
    "cycles.transmission_bounces": 12,
    "cycles.volume_bounces": 0,
    "cycles.sample_clamp_direct": 0.0,
    "cycles.sample_clamp_indirect": 0.0,
    "cycles.light_sampling_threshold": 0.0,
    "cycles.use_light_tree": False,
    "cycles.sampling_pattern": "TABULATED_SOBOL",
    "cycles.pixel_filter_type": "BLACKMAN_HARRIS",
    "cycles.filter_width": 1.5,
    "cycles.caustics_reflective": True,
    "cycles.caustics_refractive": True,
}
# EEVEE's nearest to that look (measured against the reference, tests/clevr_reference):
# shadows traced soft from the lights' sizes, screen-space ray-traced reflections (the
# metal reflects the backdrop and the objects), no clamping. The light Cycles bounces off
# the backdrop is FrameSpec.eevee_world_strength; EEVEE's screen-space "fast GI" on top of
# it brightens the floor twice (4x4 MAE 0.3 worse) and is off.
EEVEE_LOOK: dict[str, Any] = {
    "eevee.use_shadows": True,
    "eevee.use_raytracing": True,
    "eevee.ray_tracing_method": "SCREEN",
    "eevee.use_fast_gi": False,
    "eevee.clamp_surface_indirect": 0.0,
}


WORKBENCH_EXPOSURE = -0.5


def workbench_aa(samples: int) -> str:
    """Workbench's AA setting: the largest sample count not above ``samples``."""
    return [name for n, name in _WORKBENCH_AA if n <= samples][-1]


def spec_settings(spec: FrameSpec) -> dict[str, Any]:
    """Scene attribute path -> value for everything the spec fixes in the render."""
    settings: dict[str, Any] = {
        "render.engine": compat.engine_id(spec.engine),
        "render.resolution_x": spec.width,
        "render.resolution_y": spec.height,
        "render.resolution_percentage": 100,
        "render.pixel_aspect_x": 1.0,
        "render.pixel_aspect_y": 1.0,
        "render.film_transparent": False,
        "render.dither_intensity": 0.0,  # dither is random noise: breaks determinism
        "render.use_compositing": False,
        "render.use_sequencer": False,
        "render.use_border": False,
        "render.use_motion_blur": False,
        "render.use_stamp": False,
        "render.use_freestyle": False,
        "render.image_settings.file_format": "PNG",
        "render.image_settings.color_mode": "RGB",
        "render.image_settings.color_depth": "8",
        "render.image_settings.compression": 0,  # fastest write; readback decodes it
        "view_settings.view_transform": "Standard",  # CLEVR's look: plain sRGB
        "view_settings.look": "None",
        "view_settings.exposure": 0.0,
        "view_settings.gamma": 1.0,
        "view_settings.use_curve_mapping": False,
        "display_settings.display_device": "sRGB",
        "view_layer.samples": 0,  # a per-layer override would beat the spec's samples
    }
    if spec.engine == "cycles":
        settings |= {
            "cycles.samples": spec.samples,
            "cycles.seed": spec.seed,
            "cycles.use_animated_seed": False,
            "cycles.use_adaptive_sampling": False,  # exactly `samples` per pixel
            "cycles.use_denoising": False,
            "cycles.device": compat.cycles_device(),
        } | CLEVR_CYCLES
    elif spec.engine == "eevee":
        settings |= {"eevee.taa_render_samples": spec.samples} | EEVEE_LOOK
    else:
        settings |= {
            "display.render_aa": workbench_aa(spec.samples),
            "display.shading.light": "STUDIO",
            "display.shading.color_type": "MATERIAL",
            "display.shading.show_shadows": False,  # stencil shadows cost 5x the render
            "display.shading.show_cavity": False,
            "display.shading.show_xray": False,
            "display.shading.show_object_outline": False,
            "display.shading.show_specular_highlight": True,
            # Workbench's studio light is brighter than CLEVR's lamps: -0.5 stops halves
            # the error against the reference (MAE 25 -> 14); its shadows only darken more.
            "view_settings.exposure": WORKBENCH_EXPOSURE,
        }
    return settings


def _owner(scene: bpy.types.Scene, group: str) -> Any:
    owner: Any = scene
    for name in group.split(".") if group else ():
        owner = scene.view_layers[0] if name == "view_layer" else getattr(owner, name)
    return owner


def resolve_path(scene: bpy.types.Scene, path: str) -> tuple[Any, str]:
    """(owner, attribute) of a dotted path below ``scene``, as in :func:`spec_settings`."""
    group, _, attr = path.rpartition(".")
    return _owner(scene, group), attr


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, set):
        return frozenset(value)
    return tuple(value)  # bpy_prop_array, mathutils types


def values_close(a: Any, b: Any) -> bool:
    """Equal, with floats and float sequences compared to 1e-5 (bpy stores float32)."""
    if isinstance(a, bool | str) or isinstance(b, bool | str):
        return a == b
    try:
        if a == b:  # the common case, and ~100x cheaper than numpy
            return True
    except ValueError:  # numpy arrays compare elementwise
        pass
    if isinstance(a, float | tuple | list | np.ndarray) or isinstance(b, float | tuple | list):
        try:
            x, y = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
        except (TypeError, ValueError):
            return a == b
        return x.shape == y.shape and bool(np.allclose(x, y, rtol=0, atol=_TOL))
    return a == b


def apply(scene: bpy.types.Scene, expected: dict[str, Any]) -> None:
    """Set each path that differs (setting an unchanged value still re-syncs engines).
    A value Blender refuses is left as it is: the frame check then reports it."""
    for path, value in expected.items():
        owner, attr = resolve_path(scene, path)
        if not values_close(_plain(getattr(owner, attr)), value):
            try:
                setattr(owner, attr, set(value) if isinstance(value, frozenset) else value)
            except (TypeError, ValueError, AttributeError):
                continue
