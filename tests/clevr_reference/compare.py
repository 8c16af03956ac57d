"""Measure derender's frame against CLEVR's own renderer (``reference.py``).

    .venv/bin/python tests/clevr_reference/compare.py [--samples 128] [--engines cycles,eevee]

prints one row per scene and engine: mean absolute error in 8-bit levels at full size and
after averaging 4x4 blocks (which removes most sampling noise), SSIM on luma, and the
smallest per-object mask IoU. The scenes are CLEVR_val_000000 (``tests/data``) and the
seeded scenes of :data:`SEEDED`; every render is 480x320, Cycles with equal samples and
seed on both sides, no jitter. derender renders in this process, the reference in a
subprocess (it opens CLEVR's ``base_scene.blend``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
VAL_000000 = HERE.parent / "data" / "clevr_scene_sample.json"
SEEDED = ((1, 0), (2, 0), (3, 0))  # (seed, index) of generate_scene
WIDTH, HEIGHT = 480, 320


@dataclass(frozen=True)
class Measure:
    mae: float  # full size, levels of 255
    mae4: float  # after 4x4 block averaging
    ssim: float
    min_iou: float  # smallest per-object mask IoU (1.0 without objects)


def scenes() -> list[tuple[str, dict]]:
    """(name, CLEVR scene dict) of the compared scenes."""
    from derender.scenes import generate_scene, scene_to_clevr

    out = [("CLEVR_val_000000", json.loads(VAL_000000.read_text()))]
    for seed, index in SEEDED:
        out.append((f"seed{seed}:{index}", scene_to_clevr(generate_scene(seed, index))))
    return out


def block_mean(img: np.ndarray, k: int = 4) -> np.ndarray:
    h, w = img.shape[0] // k * k, img.shape[1] // k * k
    a = img[:h, :w].astype(np.float64)
    return a.reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def min_iou(masks: np.ndarray, ref_masks: np.ndarray) -> float:
    """The smallest IoU of object i's mask in ``masks`` and in ``ref_masks`` (1.0 if none)."""
    ious = []
    for i in range(1, int(max(masks.max(), ref_masks.max())) + 1):
        a, b = masks == i, ref_masks == i
        union = (a | b).sum()
        ious.append(float((a & b).sum() / union) if union else 1.0)
    return min(ious, default=1.0)


def measure(
    image: np.ndarray, ref: np.ndarray, masks: np.ndarray, ref_masks: np.ndarray
) -> Measure:
    from derender.reward.image import as_float, luminance
    from derender.reward.ssim import ssim

    diff = np.abs(image.astype(np.int16) - ref.astype(np.int16))
    mae4 = float(np.abs(block_mean(image) - block_mean(ref)).mean())
    s = float(ssim(luminance(as_float(image)), luminance(as_float(ref))))
    return Measure(float(diff.mean()), mae4, s, min_iou(masks, ref_masks))


def reference(scene: dict, samples: int, seed: int, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """CLEVR's render and masks of ``scene`` (a subprocess running ``reference.py``)."""
    src, png, ids = workdir / "scene.json", workdir / "ref.png", workdir / "ref.npy"
    src.write_text(json.dumps(scene))
    cmd = [sys.executable, str(HERE / "reference.py"), str(src), str(png),
           "--width", str(WIDTH), "--height", str(HEIGHT), "--samples", str(samples),
           "--seed", str(seed), "--masks", str(ids)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=1800)
    return np.asarray(Image.open(png).convert("RGB")), np.load(ids)


def derender(scene: dict, engine: str, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """derender's render and masks of ``scene`` in the unjittered CLEVR frame."""
    from derender.addon import build, render
    from derender.addon.frame import BuiltFrame
    from derender.scenes import FrameSpec, scene_from_clevr

    spec = replace(FrameSpec(), width=WIDTH, height=HEIGHT, engine=engine, samples=samples,
                   seed=seed)  # fmt: skip
    built_frame = BuiltFrame(spec)
    objects = build.build(scene_from_clevr(scene))
    image = render.render_image(spec)
    masks = render.render_masks(objects, spec)
    built_frame.reset(spec)
    return image, masks


def main(argv: list[str] | None = None) -> int:
    from reference import missing_files

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", default="cycles", help="comma-separated: cycles,eevee,workbench")
    p.add_argument("--eevee-samples", type=int, default=64)
    p.add_argument("--save", type=Path, help="also write every image here")
    p.add_argument("--only", help="only the scene of this name (e.g. CLEVR_val_000000)")
    args = p.parse_args(argv)
    if missing := missing_files():
        print(f"CLEVR's files are missing: {missing}", file=sys.stderr)
        return 2
    engines = args.engines.split(",")
    print("| scene | engine | MAE | MAE 4x4 | SSIM | min mask IoU |\n|---|---|---|---|---|---|")
    for name, scene in scenes():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            ref, ref_masks = reference(scene, args.samples, args.seed, Path(tmp))
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ref).save(args.save / f"{name.replace(':', '_')}_reference.png")
        for engine in engines:
            samples = {"cycles": args.samples, "eevee": args.eevee_samples}.get(engine, 8)
            image, masks = derender(scene, engine, samples, args.seed)
            m = measure(image, ref, masks, ref_masks)
            if args.save:
                Image.fromarray(image).save(args.save / f"{name.replace(':', '_')}_{engine}.png")
            print(f"| {name} | {engine} {samples} | {m.mae:.2f} | {m.mae4:.2f} | {m.ssim:.3f} "
                  f"| {m.min_iou:.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
