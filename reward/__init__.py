"""Image metrics, scene-graph matching, presets and batched LPIPS. Never imports bpy.

Importing this package never imports torch either: MSE, SSIM, IoU, edges, the scene graph
and the heatmap are numpy only (the Blender GUI has nothing else); torch loads only when a
spec weights LPIPS.
"""

from __future__ import annotations

from .heatmap import heatmap
from .scene_graph import SceneGraphScore, scene_graph_score
from .score import RewardResult, score, score_batch
from .spec import COMPONENTS, PRESETS, RewardSpec, preset

__all__ = [
    "COMPONENTS",
    "PRESETS",
    "RewardResult",
    "RewardSpec",
    "SceneGraphScore",
    "heatmap",
    "preset",
    "scene_graph_score",
    "score",
    "score_batch",
]
