"""Target ids are content hashes; the cache is a bounded LRU."""

from __future__ import annotations

import numpy as np
import pytest
from derender.protocol.errors import UnknownTarget
from derender.protocol.targets import Target, TargetCache, target_id
from derender.scenes import generate_scene, scene_from_clevr, scene_to_clevr


def _target(i: int) -> Target:
    scene = generate_scene(0, i)
    return Target(target_id(scene, "f"), scene, np.zeros((2, 2, 3), np.uint8), None, "f")


def test_target_id_depends_on_pixels_only():
    scene = generate_scene(4, 1)
    tid = target_id(scene, "frame-a")
    assert tid.startswith("t-") and len(tid) == 18
    assert target_id(scene.stripped(), "frame-a") == tid  # CLEVR bookkeeping does not count
    assert target_id(scene_from_clevr(scene_to_clevr(scene)), "frame-a") == tid
    assert target_id(scene, "frame-b") != tid
    moved = scene.with_objects([scene.objects[0].moved(dx=1e-9), *scene.objects[1:]])
    assert target_id(moved, "frame-a") != tid


def test_cache_evicts_least_recently_used():
    cache = TargetCache(max_entries=2)
    a, b, c = (_target(i) for i in range(3))
    cache.put(a)
    cache.put(b)
    assert cache.get(a.target_id) is a  # a is now the most recent
    cache.put(c)
    assert len(cache) == 2 and a.target_id in cache and c.target_id in cache
    with pytest.raises(UnknownTarget, match=b.target_id):
        cache.get(b.target_id)


def test_cache_size_must_be_positive():
    with pytest.raises(ValueError, match="max_entries"):
        TargetCache(0)
