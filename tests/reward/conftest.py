"""Synthetic CLEVR-like images for the reward tests (numpy only, no Blender).

``draw`` projects each object's centre through the real locked camera (``FrameSpec``) and
paints a shaded disc (sphere, cylinder) or square (cube) in the object's CLEVR colour,
far to near, over a gradient ground. Crude, but objects move, change colour and vanish in
the image exactly when they do in the Scene, which is what the metrics must respond to.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from derender.scenes import universe
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import generate_scene
from derender.scenes.model import Scene

ORIGINAL_TORCH_HOME = os.environ.get("TORCH_HOME")


@pytest.fixture(autouse=True)
def offline_torch_hub(tmp_path_factory, monkeypatch):
    """Hermetic LPIPS: an empty torch hub cache and downloads disabled, so the real AlexNet
    weights are absent (as on this machine) unless a test provides a file, and no test ever
    fetches 233 MB on a machine that is online. Yields the temporary TORCH_HOME."""
    try:
        import torch
        from derender.reward import lpips
    except ImportError:
        yield None
        return
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise OSError(f"downloads are disabled in the reward tests: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    lpips.cached.cache_clear()
    yield home
    lpips.cached.cache_clear()


def background(size: int) -> np.ndarray:
    """The empty frame: a ground that brightens towards the camera."""
    ramp = np.linspace(0.35, 0.6, size)[:, None, None]
    return np.broadcast_to(ramp, (size, size, 3)).copy()


def draw(scene: Scene, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, int32 instance mask with ids 1..n) of ``scene``."""
    frame = FrameSpec(width=size, height=size)
    img = background(size)
    mask = np.zeros((size, size), dtype=np.int32)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    focal = frame.camera.lens / frame.camera.sensor_width * size
    order = sorted(range(len(scene)), key=lambda i: -frame.project(scene.objects[i].position)[2])
    for i in order:
        obj = scene.objects[i]
        u, v, depth = frame.project(obj.position)
        cx, cy = u * size, (1.0 - v) * size
        r = obj.radius * focal / depth
        if obj.shape == "cube":
            inside = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
        else:
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        rgb = np.array(universe.COLORS[obj.color], dtype=np.float64) / 255.0
        # Lit from the upper left; metal gets a sharper, brighter highlight.
        shade = 0.75 + 0.25 * np.clip(((cx - xx) + (cy - yy)) / max(r, 1e-6), -1, 1)
        gain = 1.25 if obj.material == "metal" else 1.0
        img[inside] = np.clip(rgb * shade[inside, None] * gain, 0, 1)
        mask[inside] = i + 1
    return np.rint(img * 255).astype(np.uint8), mask


def near_miss(scene: Scene, shift: float = 0.3) -> Scene:
    """The scene with its first object moved ``shift`` metres along +x."""
    return scene.with_objects((scene.objects[0].moved(dx=shift), *scene.objects[1:]))


@pytest.fixture(scope="session")
def scenes20() -> list[Scene]:
    return [generate_scene(seed=7, index=i) for i in range(20)]


@pytest.fixture(scope="session")
def synth():
    """The drawing helpers of this module, for tests (conftest is not importable)."""

    return SimpleNamespace(draw=draw, near_miss=near_miss, background=background)
