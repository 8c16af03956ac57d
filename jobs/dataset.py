"""``derender dataset``: batch-render a target dataset through a farm, resumably.

Scene ``i`` is ``generate_scene(seed, i, visible=...)`` in the farm's frame: CLEVR's
visibility rule (every object at least ``frame.min_pixels_per_object()`` pixels) is checked
on the farm's own masks of each candidate, and a rejected candidate is resampled exactly as
the generator does, so the dataset holds the scenes a trusted worker running
``generate_scene(seed, i, config, visible=render.visibility_check(built_frame, frame))``
makes (a rejected candidate costs one full render). Per scene the output
directory gets ``NNNNN.png`` (image), ``NNNNN_masks.png`` (instance ids, 8-bit),
``NNNNN.json`` (CLEVR scene JSON) and both ground-truth programs, ``NNNNN_dsl.py`` and
``NNNNN_bpy.py``; plus ``frame.json`` and ``contact_sheet.png``. Every file is written to
a temp name and renamed, so a scene whose files all exist is complete and a rerun skips
it. Requests are pipelined (several clients in threads) so every worker stays busy.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from ..scenes import (
    FrameSpec,
    GeneratorConfig,
    Scene,
    bpy_program,
    dsl_program,
    enough_pixels,
    generate_scene,
    scene_to_json,
)

SUFFIXES = (".png", "_masks.png", ".json", "_dsl.py", "_bpy.py")


def _paths(out: Path, index: int) -> list[Path]:
    return [out / f"{index:05d}{suffix}" for suffix in SUFFIXES]


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _png(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _save(out: Path, index: int, target: Any, frame: FrameSpec) -> None:
    image, masks, json_path, dsl_path, bpy_path = _paths(out, index)
    _write(dsl_path, dsl_program(target.scene).encode())
    _write(bpy_path, bpy_program(target.scene).encode())
    _write(json_path, scene_to_json(target.scene, frame).encode())
    ids = (
        np.zeros(target.image.shape[:2], np.uint8)
        if target.masks is None
        else np.clip(target.masks, 0, 255).astype(np.uint8)
    )
    _write(masks, _png(ids))
    _write(image, _png(np.ascontiguousarray(target.image, np.uint8)))  # last: marks "done"


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, done: int = 0, stream: Any = sys.stderr) -> None:
        self.total, self.done, self.stream = total, done, stream
        self.start = time.monotonic()
        self._first = done

    def step(self) -> None:
        self.done += 1
        rate = (self.done - self._first) / max(time.monotonic() - self.start, 1e-6)
        filled = int(30 * self.done / max(self.total, 1))
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {rate:.1f} scenes/s"
        )
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def contact_sheet(out: Path, count: int, columns: int = 8, limit: int = 64) -> Path:
    """A grid of the first ``limit`` images, written to ``out/contact_sheet.png``."""
    from PIL import Image

    files = [p for p in (out / f"{i:05d}.png" for i in range(count)) if p.exists()][:limit]
    if not files:
        raise FileNotFoundError(f"no images in {str(out)!r} to make a contact sheet of")
    with Image.open(files[0]) as first:
        w, h = first.size
    rows = -(-len(files) // columns)
    sheet = Image.new("RGB", (w * min(columns, len(files)), h * rows), (0, 0, 0))
    for k, path in enumerate(files):
        with Image.open(path) as img:
            sheet.paste(img.convert("RGB"), ((k % columns) * w, (k // columns) * h))
    target = out / "contact_sheet.png"
    sheet.save(target)
    return target


def render_all(
    address: str,
    out: Path,
    indices: list[int],
    seed: int,
    frame: FrameSpec,
    concurrency: int,
    on_done: Callable[[], None],
) -> list[int]:
    """Reset every scene through the farm at ``address``; returns the indices that failed."""
    from ..protocol.client import Client
    from ..protocol.errors import ProtocolError
    from ..scenes.generator import GenerationError

    config = GeneratorConfig(frame=frame)

    def visible_target(client: Client, index: int) -> Any:
        """The target of scene ``index``: candidates rendered until one is visible."""
        accepted: list[Any] = []

        def visible(scene: Scene) -> bool:
            target = client.reset(scene=scene, masks=True)
            ok = target.masks is not None and enough_pixels(target.masks, len(scene), frame)
            if ok:
                accepted.append(target)
            return ok

        generate_scene(seed, index, config, visible=visible)
        return accepted[-1]

    local = threading.local()
    clients: list[Client] = []
    lock = threading.Lock()

    def one(index: int) -> int | None:
        if not hasattr(local, "client"):
            local.client = Client(address, timeout=300.0)
            with lock:
                clients.append(local.client)
        try:
            target = visible_target(local.client, index)
        except (ProtocolError, GenerationError) as exc:
            print(f"\nscene {index}: {exc}", file=sys.stderr)
            return index
        _save(out, index, target, frame)
        return None

    failed: list[int] = []
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for fut in as_completed([pool.submit(one, i) for i in indices]):
                bad = fut.result()
                if bad is not None:
                    failed.append(bad)
                on_done()
    finally:
        for c in clients:
            c.close()
    return sorted(failed)


def make_dataset(
    out: str | Path,
    count: int,
    seed: int = 0,
    address: str | None = None,
    workers: int = 2,
    **farm_options: Any,
) -> dict[str, Any]:
    """Render scenes ``0..count-1`` of stream ``seed`` into ``out``; skip finished ones."""
    from ..farm.local import LocalFarm
    from ..protocol.client import Client

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(count) if not all(p.exists() for p in _paths(out, i))]
    farm = None
    if address is None and todo:
        farm = LocalFarm(workers=workers, **farm_options).start()
        address = farm.address
    t0 = time.monotonic()
    try:
        failed: list[int] = []
        if todo:
            assert address is not None
            with Client(address) as client:
                frame = client.info().frame
            (out / "frame.json").write_text(json.dumps(frame.to_dict(), indent=2))
            bar = Progress(count, count - len(todo))
            failed = render_all(address, out, todo, seed, frame, 2 * max(workers, 1), bar.step)
    finally:
        if farm is not None:
            farm.stop()
    sheet = contact_sheet(out, count)
    return {
        "out": str(out),
        "count": count,
        "rendered": len(todo) - len(failed),
        "skipped": count - len(todo),
        "failed": failed,
        "contact_sheet": str(sheet),
        "seconds": round(time.monotonic() - t0, 3),
    }
