"""Read and write CLEVR's scene JSON (one scene, or a ``{"info", "scenes"}`` file).

A scene file written by CLEVR's ``render_images.py`` loads unchanged and writes back to
the same JSON: ``3d_coords`` keeps its z, ``pixel_coords`` and every top-level key we do
not interpret (``directions``, ``relationships``, ``image_index`` …) are carried as they
were. Scenes built in code get ``directions``, ``relationships`` and ``pixel_coords``
computed from a :class:`FrameSpec`.

CLEVR jitters its camera per image and records it only through ``pixel_coords`` (its
``directions`` are the un-jittered camera's: ``render_images.py`` reads the camera matrix
before Blender updates it). :func:`with_fitted_camera` recovers the jittered camera from
them, so a CLEVR scene renders from exactly the camera CLEVR used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .frame import POSE_KEY, FrameSpec
from .model import Scene, SceneObject
from .relations import relationships


def object_from_clevr(data: Mapping[str, Any], index: int = 0) -> SceneObject:
    """One entry of ``objects``; errors name the object index and the field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"objects[{index}] must be an object, got {type(data).__name__}")
    missing = [k for k in ("shape", "size", "material", "color", "3d_coords") if k not in data]
    if missing:
        raise ValueError(f"objects[{index}] lacks field(s) {missing}")
    coords = data["3d_coords"]
    if not isinstance(coords, list | tuple) or len(coords) not in (2, 3):
        raise ValueError(f"objects[{index}].3d_coords must be [x, y, z], got {coords!r}")
    try:
        return SceneObject(
            shape=data["shape"],
            size=data["size"],
            material=data["material"],
            color=data["color"],
            x=coords[0],
            y=coords[1],
            z=coords[2] if len(coords) == 3 else None,
            rotation=data.get("rotation", 0.0),
            pixel_coords=tuple(data["pixel_coords"]) if data.get("pixel_coords") else None,
        )
    except ValueError as exc:
        raise ValueError(f"objects[{index}]: {exc}") from exc


def object_to_clevr(obj: SceneObject, frame: FrameSpec | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "shape": obj.shape,
        "size": obj.size,
        "material": obj.material,
        "3d_coords": list(obj.position),
        "rotation": obj.rotation,
    }
    pixel = obj.pixel_coords
    if pixel is None and frame is not None:
        pixel = frame.pixel_coords(obj.position)
    if pixel is not None:
        out["pixel_coords"] = list(pixel)
    out["color"] = obj.color
    return out


def scene_from_clevr(data: Mapping[str, Any]) -> Scene:
    """A Scene from one CLEVR scene dict (the format of ``CLEVR_*.json`` scene files)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a CLEVR scene must be a JSON object, got {type(data).__name__}")
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise ValueError(f"scene.objects must be a list, got {objects!r:.80}")
    objs = tuple(object_from_clevr(o, i) for i, o in enumerate(objects))
    return Scene(objs, {k: v for k, v in data.items() if k != "objects"})


def scene_to_clevr(scene: Scene, frame: FrameSpec | None = None) -> dict[str, Any]:
    """The CLEVR dict; derived fields missing from ``scene.extra`` come from ``frame``:
    ``pixel_coords`` from its camera as the scene was made (:meth:`FrameSpec.posed`),
    ``directions`` from the un-jittered one, as CLEVR's."""
    frame = frame or FrameSpec()
    derived = ("directions", "relationships")
    # CLEVR's key order: bookkeeping, objects, directions, relationships, then the rest.
    out: dict[str, Any] = {k: v for k, v in scene.extra.items() if k not in derived}
    out["objects"] = [object_to_clevr(o, frame.posed(scene.extra)) for o in scene.objects]
    directions = scene.extra.get("directions")
    if directions is None:
        directions = {k: list(v) for k, v in frame.directions().items()}
    out["directions"] = directions
    out["relationships"] = scene.extra.get("relationships") or relationships(
        [o.position for o in scene.objects], directions
    )
    return out


def scene_to_json(scene: Scene, frame: FrameSpec | None = None, **kwargs: Any) -> str:
    return json.dumps(scene_to_clevr(scene, frame), **kwargs)


def scene_from_json(text: str | bytes) -> Scene:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"scene JSON is not valid JSON: {exc}") from exc
    return scene_from_clevr(data)


def load_scenes(path: str | Path) -> list[Scene]:
    """Scenes from a single-scene file or a ``{"info", "scenes": [...]}`` collection."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"cannot read scene file {str(path)!r}: {exc}") from exc
    if isinstance(data, Mapping) and "scenes" in data:
        return [scene_from_clevr(s) for s in data["scenes"]]
    return [scene_from_clevr(data)]


def dump_scenes(
    scenes: Iterable[Scene],
    path: str | Path,
    info: Mapping[str, Any] | None = None,
    frame: FrameSpec | None = None,
) -> None:
    """Write a CLEVR ``{"info", "scenes"}`` collection (as ``CLEVR_scenes.json``)."""
    doc = {
        "info": dict(info or {}),
        "scenes": [scene_to_clevr(s, frame) for s in scenes],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


_DEPTH_WEIGHT = 50.0  # residual weight of 1 m of depth, in pixels (1 px is ~2 cm here)


def _residuals(scene: Scene, frame: FrameSpec, location: np.ndarray) -> np.ndarray:
    posed = replace(frame, camera=replace(frame.camera, location=tuple(location)))
    out = []
    for o in scene.objects:
        assert o.pixel_coords is not None  # checked by the caller
        x, y, depth = posed.project(o.position)
        px, py, pz = o.pixel_coords
        out += [x * frame.width - px, (1.0 - y) * frame.height - py, (depth - pz) * _DEPTH_WEIGHT]
    return np.asarray(out)


def with_fitted_camera(scene: Scene, frame: FrameSpec, iterations: int = 20) -> Scene:
    """``scene`` with the camera CLEVR rendered it from (in ``frame_pose``): the location
    that best reproduces its objects' ``pixel_coords`` and depths at ``frame``'s size, with
    the camera aimed at ``frame.camera.target`` (CLEVR's tracks an empty at the origin),
    found by Gauss-Newton from ``frame.camera``. The lights stay ``frame``'s: CLEVR does
    not record their jitter. ValueError if an object has no ``pixel_coords``."""
    missing = [i for i, o in enumerate(scene.objects) if o.pixel_coords is None]
    if missing or not scene.objects:
        raise ValueError(f"fitting the camera needs pixel_coords; objects {missing} have none")
    location = np.asarray(frame.camera.location, dtype=float)
    for _ in range(iterations):
        r = _residuals(scene, frame, location)
        jacobian = np.empty((len(r), 3))
        for k in range(3):
            step = np.zeros(3)
            step[k] = 1e-6
            jacobian[:, k] = (_residuals(scene, frame, location + step) - r) / 1e-6
        delta = np.linalg.lstsq(jacobian, r, rcond=None)[0]
        location = location - delta
        if float(np.abs(delta).max()) < 1e-9:
            break
    x, y, z = (float(v) for v in location)
    camera = replace(frame.camera, location=(x, y, z))
    pose = replace(frame, camera=camera).pose()
    return Scene(scene.objects, {**scene.extra, POSE_KEY: pose})
