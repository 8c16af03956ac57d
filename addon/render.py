"""Rendering and pixel readback: images, instance masks, the generator's visibility hook.

Readback. Blender never evaluates the compositor's Viewer node in background mode and
the "Render Result" image has no pixel buffer there, so the render is written as an
uncompressed 8-bit PNG into a private tmpfs directory and decoded with Pillow; measured
(``derender bench render``) this costs about a millisecond at 320x240, and it is exactly
"the PNG the render would be".

Masks. One extra Workbench pass with flat lighting, no anti-aliasing, no world (film
transparent) and each object's colour set to its id in base 16 (one digit per channel):
ids survive the sRGB view transform and 8-bit quantisation exactly.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, cast

import bpy
import numpy as np
from PIL import Image

from ..scenes.frame import FrameSpec
from ..scenes.generator import enough_pixels
from ..scenes.model import Scene
from . import build, render_settings
from .frame import BuiltFrame

_LEVELS = 16
MAX_MASK_IDS = _LEVELS**3 - 1
_tmpdir: str | None = None


class RenderFailed(RuntimeError):
    """Blender did not produce the image the spec asks for."""


_PREFIX = "derender-render-"


def sweep_dead_render_dirs(base: str) -> int:
    """Remove the render dirs of processes that no longer exist; returns how many.

    A worker killed at its hard deadline never runs ``atexit``; /dev/shm is memory, so the
    next process to start sweeps what dead ones left (dirs are named by pid)."""
    removed = 0
    for name in os.listdir(base):
        pid_text = name[len(_PREFIX) :].split("-", 1)[0]
        if not name.startswith(_PREFIX) or not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed += 1
        except PermissionError:  # alive, another user's
            pass
    return removed


def _output_path() -> str:
    global _tmpdir
    if _tmpdir is None or not os.path.isdir(_tmpdir):
        shm = "/dev/shm"
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
        sweep_dead_render_dirs(base)
        _tmpdir = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base)
        atexit.register(shutil.rmtree, _tmpdir, ignore_errors=True)
    return os.path.join(_tmpdir, "render.png")


def _render_png(scene: bpy.types.Scene, mode: str) -> np.ndarray:
    """Render ``scene`` and read the written PNG back as H x W x len(mode) uint8."""
    path = _output_path()
    if scene.render.filepath != path:
        scene.render.filepath = path
    if os.path.exists(path):  # left by a failed decode: must not pass for a new render
        os.remove(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise RenderFailed(f"the {scene.render.engine} render wrote no image to {path}") from None
    os.remove(path)  # a worker killed at its hard deadline leaves at most an empty dir
    return pixels


def render_image(spec: FrameSpec) -> np.ndarray:
    """Render the current scene: H x W x 3 uint8 sRGB, top row first (as the PNG)."""
    scene = cast(bpy.types.Scene, bpy.context.scene)
    image = _render_png(scene, "RGB")
    if image.shape[:2] != (spec.height, spec.width):
        raise RenderFailed(
            f"rendered {image.shape[1]}x{image.shape[0]}, the spec asks for "
            f"{spec.width}x{spec.height} (were the render settings changed?)"
        )
    return image


def _srgb_byte(linear: float) -> int:
    srgb = linear * 12.92 if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return round(srgb * 255)


_LEVEL_BYTES = np.array([_srgb_byte(i / (_LEVELS - 1)) for i in range(_LEVELS)])
# byte -> nearest level: decoding tolerates an off-by-one from the colour transform.
_BYTE_TO_LEVEL = np.abs(np.arange(256)[:, None] - _LEVEL_BYTES[None, :]).argmin(axis=1)


def _id_color(index: int) -> tuple[float, float, float, float]:
    digits = (index % _LEVELS, index // _LEVELS % _LEVELS, index // _LEVELS**2)
    r, g, b = (d / (_LEVELS - 1) for d in digits)
    return (r, g, b, 1.0)


class _Overrides:
    """Temporarily set attributes; ``restore`` puts every original value back."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, attr: str, value: Any) -> None:
        old = getattr(owner, attr)
        if isinstance(old, bpy.types.bpy_prop_array) or hasattr(old, "to_tuple"):
            old = tuple(old)
        self._saved.append((owner, attr, old))
        setattr(owner, attr, value)

    def restore(self) -> None:
        for owner, attr, value in reversed(self._saved):
            setattr(owner, attr, value)
        self._saved.clear()


_MASK_SETTINGS: dict[str, Any] = {
    "render.engine": "BLENDER_WORKBENCH",
    "render.film_transparent": True,
    "render.dither_intensity": 0.0,
    "render.use_compositing": False,
    "render.image_settings.color_mode": "RGBA",
    "display.render_aa": "OFF",
    "display.shading.light": "FLAT",
    "display.shading.color_type": "OBJECT",
    "display.shading.show_shadows": False,
    "display.shading.show_cavity": False,
    "display.shading.show_xray": False,
    "display.shading.show_object_outline": False,
    "display.shading.show_specular_highlight": False,
    "display.shading.show_backface_culling": False,
    "view_settings.view_transform": "Standard",
    "view_settings.look": "None",
    "view_settings.exposure": 0.0,
    "view_settings.gamma": 1.0,
    "view_settings.use_curve_mapping": False,
}


def render_masks(objects: Sequence[bpy.types.Object], spec: FrameSpec) -> np.ndarray:
    """H x W int32 instance ids: ``objects[i]`` is ``i + 1``; 0 is background, ground and
    every object not listed (which still occludes). Render settings are restored after."""
    if len(objects) > MAX_MASK_IDS:
        raise ValueError(f"at most {MAX_MASK_IDS} objects per mask, got {len(objects)}")
    ids: dict[int, int] = {}
    for i, obj in enumerate(objects):
        ids.setdefault(obj.session_uid, i + 1)
    scene = cast(bpy.types.Scene, bpy.context.scene)
    overrides = _Overrides()
    try:
        for path, value in _MASK_SETTINGS.items():
            owner, attr = render_settings.resolve_path(scene, path)
            overrides.set(owner, attr, value)
        overrides.set(scene.render, "resolution_x", spec.width)
        overrides.set(scene.render, "resolution_y", spec.height)
        overrides.set(scene.render, "resolution_percentage", 100)
        for obj in scene.objects:
            overrides.set(obj, "color", _id_color(ids.get(obj.session_uid, 0)))
            if obj.display_type in {"WIRE", "BOUNDS"}:  # Workbench would draw only edges
                overrides.set(obj, "display_type", "TEXTURED")
        rgba = _render_png(scene, "RGBA")
    finally:
        overrides.restore()
    levels = _BYTE_TO_LEVEL[rgba[..., :3]]
    masks = levels[..., 0] + _LEVELS * levels[..., 1] + _LEVELS**2 * levels[..., 2]
    masks[rgba[..., 3] < 128] = 0
    masks[masks > len(objects)] = 0  # unreachable unless a colour was misread
    return masks.astype(np.int32)


def visibility_check(built_frame: BuiltFrame, spec: FrameSpec) -> Callable[[Scene], bool]:
    """The generator's hook (``generate_scene(..., visible=...)``): CLEVR's visibility rule,
    :func:`scenes.generator.enough_pixels`, on the instance masks of the scene in its own
    frame (``spec.posed(scene.extra)``: a jittered scene's camera). One flat Workbench pass
    at ``spec``'s size, whatever ``spec``'s engine. It resets to the frame, builds the
    scene, and afterwards removes exactly what it built (only trusted code ran: a second
    reset would cost more than the mask pass) and moves the camera and lights back."""

    def visible(scene: Scene) -> bool:
        posed = spec.posed(scene.extra)
        built_frame.reset(posed)
        objects = build.build(scene)
        try:
            masks = render_masks(objects, posed)
        finally:
            bpy.data.batch_remove(objects)
            built_frame.move(spec)
        return enough_pixels(masks, len(scene), posed)

    return visible
