"""Scoring: N (render, target) pairs in one pass, one pair through the same path.

The image metrics run in numpy over the whole batch at once; LPIPS runs as one batched torch
forward (CUDA when available).

Every result has the same schema, whatever its outcome, so that a batch of mixed outcomes
is a table (verl, EasyR1 and OpenRLHF stack the keys of a batch): ``components`` holds every
component the spec weights plus ``valid``, and the result carries its outcome and the
outcome's numeric code (``protocol.errors.OUTCOME_CODES``).

* A step that ran but was not asked to render (outcome ok, render None, a read-back scene
  given: a render-free step) gets every component but the image's, which are NaN and
  ``unavailable``, the other terms scaled up as for LPIPS below.
* A step that did not render (render None) gets every component at its worst value, the
  one whose term is 0 (:data:`WORST`: lpips 1, ssim 0, mse 1, edge_l2 1, iou 0,
  scene_graph 0, code_length 0), so its reward is w_valid · validity, rescaled like any
  other result of its batch.
* A component this machine cannot compute at all (LPIPS without torch or without the
  AlexNet weights) is NaN in every result, rendered or not, and listed in every result's
  ``unavailable``; the other terms are scaled up so the spec's maximum never changes
  (see ``spec``). NaN rather than a number, because no number would be true; the same for
  every result, because a server either has the weights or not.
* A component whose inputs the caller did not give for a rendered pair (no masks, scenes
  or code) is NaN in that result and listed in its ``unavailable``, rescaled the same way.
  The farm and ``derender serve`` always give them, so this only happens in direct calls.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from ..protocol.errors import outcome_code
from ..scenes.model import Scene
from . import image, program
from .edges import SoftEdgeCache, soft_edge_l2, soft_edges
from .scene_graph import SceneGraphScore, scene_graph_score
from .spec import DEFAULT_PRESET, RewardSpec, preset, term
from .ssim import ssim
from .svg_elements import svg_elements_score

log = logging.getLogger(__name__)
_IMAGE_METRICS = ("lpips", "ssim", "mse", "edge_l2")
# The value of each component whose term is 0: what a step that did not render scores.
WORST: MappingProxyType[str, float] = MappingProxyType(
    {
        "lpips": 1.0, "ssim": 0.0, "mse": 1.0, "edge_l2": 1.0, "iou": 0.0,
        "scene_graph": 0.0, "code_length": 0.0, "valid": 0.0, "svg_elements": 0.0,
    }
)  # fmt: skip


@dataclass(frozen=True)
class RewardResult:
    """One scored step: the reward, its components (the module docstring's fixed schema),
    its outcome and outcome code, and the spec that made it."""

    reward: float
    components: MappingProxyType[str, float]
    spec_hash: str
    unavailable: tuple[str, ...]
    outcome: str = "ok"
    outcome_code: int = 0
    scene_graph: SceneGraphScore | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the scene-graph details reduced to their numbers)."""
        out: dict[str, Any] = {
            "reward": self.reward,
            "components": dict(self.components),
            "spec_hash": self.spec_hash,
            "unavailable": list(self.unavailable),
            "outcome": self.outcome,
            "outcome_code": self.outcome_code,
        }
        if self.scene_graph is not None:
            sg = self.scene_graph
            out["scene_graph"] = {
                "precision": sg.precision,
                "recall": sg.recall,
                "f1": sg.f1,
                "attribute_accuracy": sg.attribute_accuracy,
                "mean_position_error": sg.mean_position_error,
                "score": sg.score,
            }
        return out


@functools.lru_cache(maxsize=1)
def _torch_missing() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        log.warning("LPIPS unavailable, scoring without it: torch cannot be imported (%s)", exc)
        return str(exc)
    return None


def lpips_model(spec: RewardSpec) -> Any:
    """The spec's LPIPS model, or None (the reason logged once) when it cannot be had."""
    if _torch_missing() is not None:
        return None
    from . import lpips

    return lpips.cached(spec.lpips_trunk)


def _column(values: Sequence[Any] | None, n: int, name: str) -> list[Any]:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} targets")
    return values


def _content_key(img: np.ndarray) -> tuple[Any, ...]:
    arr = np.ascontiguousarray(img)
    return (arr.shape, arr.dtype.str, hashlib.blake2b(arr.data, digest_size=16).digest())


# Targets' soft edge maps, by (content, size): a pure memo of soft_edges, shared by every
# caller in the process (the broker's reward stage, the in-process server, direct calls).
_TARGET_EDGES = SoftEdgeCache()


def _image_metrics(
    spec: RewardSpec,
    renders: np.ndarray,
    targets: np.ndarray,
    target_keys: list[tuple[Any, ...]],
    index: np.ndarray,
    model: Any,
) -> dict[str, np.ndarray]:
    """The weighted image metrics of renders[i] against targets[index[i]] (0..1 floats);
    ``target_keys[j]`` names targets[j]'s content and size."""
    a, b = renders, targets[index]
    out: dict[str, np.ndarray] = {}
    wanted = set(spec.weights)
    if "mse" in wanted:
        out["mse"] = image.mse(a, b)
    if wanted & {"ssim", "edge_l2"}:
        la, lb = image.luminance(a), image.luminance(targets)
        if "ssim" in wanted:
            out["ssim"] = ssim(la, lb[index])
        if "edge_l2" in wanted:  # Canny once per distinct target, and then cached
            out["edge_l2"] = soft_edge_l2(soft_edges(la), _TARGET_EDGES.get(target_keys, lb)[index])
    if "lpips" in wanted and model is not None:
        from .lpips import distance

        # Distinct targets only: the trunk runs once per target, not once per candidate.
        out["lpips"] = distance(model, a, targets, index)
    return out


def score_batch(
    renders: Sequence[np.ndarray | None],
    targets: Sequence[np.ndarray],
    spec: RewardSpec | None = None,
    outcomes: Sequence[str] | None = None,
    render_masks: Sequence[np.ndarray | None] | None = None,
    target_masks: Sequence[np.ndarray | None] | None = None,
    scenes: Sequence[Scene | None] | None = None,
    target_scenes: Sequence[Scene | None] | None = None,
    codes: Sequence[str | None] | None = None,
    reference_codes: Sequence[str | None] | None = None,
    backgrounds: Sequence[np.ndarray | None] | None = None,
    elements: Sequence[Sequence[Any] | None] | None = None,
    target_elements: Sequence[Sequence[Any] | None] | None = None,
) -> list[RewardResult]:
    """Score N pairs; ``spec`` defaults to the default preset, ``outcomes`` to all "ok".

    ``elements``/``target_elements``: SVG shape descriptors (``svg.render``), for the
    ``svg_elements`` component.

    Foreground IoU uses the instance masks when both are given, else a background-difference
    mask against ``backgrounds[i]`` (the empty-frame render), else it is unavailable.
    """
    spec = preset(DEFAULT_PRESET) if spec is None else spec
    n = len(targets)
    renders = _column(renders, n, "renders")
    outcomes = ["ok"] * n if outcomes is None else _column(outcomes, n, "outcomes")
    cols = {
        name: _column(values, n, name)
        for name, values in (
            ("render_masks", render_masks),
            ("target_masks", target_masks),
            ("backgrounds", backgrounds),
            ("scenes", scenes),
            ("target_scenes", target_scenes),
            ("codes", codes),
            ("reference_codes", reference_codes),
            ("elements", elements),
            ("target_elements", target_elements),
        )
    }
    model = lpips_model(spec) if "lpips" in spec.weights else None
    spec_missing = ("lpips",) if "lpips" in spec.weights and model is None else ()
    spec_hash = spec.hash()

    # Resample (each distinct target once), then group by shape for batched metrics; there
    # is one group unless size is None and the pairs come at several resolutions.
    comps: list[dict[str, float]] = [{} for _ in range(n)]
    groups: dict[tuple[int, ...], list[int]] = {}
    prepared: dict[int, np.ndarray] = {}
    target_of: dict[int, int] = {}
    distinct: dict[tuple[Any, ...], int] = {}
    uniq: list[np.ndarray] = []
    uniq_keys: list[tuple[Any, ...]] = []
    for i, (r, t) in enumerate(zip(renders, targets, strict=True)):
        if r is None:
            continue
        key = _content_key(t)
        if key not in distinct:
            distinct[key] = len(uniq)
            uniq.append(image.prepare(t, spec.size))
            uniq_keys.append((key, spec.size))
        fr, j = image.prepare(r, spec.size), distinct[key]
        if fr.shape != uniq[j].shape:
            raise ValueError(
                f"pair {i}: render {fr.shape} and target {uniq[j].shape} differ in shape"
            )
        prepared[i], target_of[i] = fr, j
        groups.setdefault(fr.shape, []).append(i)
    if set(spec.weights) & set(_IMAGE_METRICS):
        for idx in groups.values():
            used = sorted({target_of[i] for i in idx})
            local = {j: k for k, j in enumerate(used)}
            metrics = _image_metrics(
                spec,
                np.stack([prepared[i] for i in idx]),
                np.stack([uniq[j] for j in used]),
                [uniq_keys[j] for j in used],
                np.array([local[target_of[i]] for i in idx]),
                model,
            )
            for name, values in metrics.items():
                for k, i in enumerate(idx):
                    comps[i][name] = float(values[k])

    results = []
    for i in range(n):
        rendered = renders[i] is not None
        # A render-free step (ran, no image asked for, its read-back scene given): every
        # term but the image's.
        scored = rendered or (outcomes[i] == "ok" and cols["scenes"][i] is not None)
        sg = None
        if scored:
            c = comps[i]
            extra = {k: v[i] for k, v in cols.items()}
            sg = _pair_components(spec, c, renders[i], targets[i], extra)
        else:
            c = {k: WORST[k] for k in spec.weights if k not in spec_missing}
        c["valid"] = program.validity(outcomes[i], rendered)
        missing = tuple(sorted(name for name in spec.weights if name not in c))
        for name in missing:
            c[name] = math.nan
        avail = [k for k in spec.weights if k not in missing]
        w_avail = sum(spec.weights[k] for k in avail)
        total = sum(spec.weights[k] * term(k, c[k]) for k in avail)
        reward = total * spec.total_weight / w_avail if w_avail > 0 else 0.0
        results.append(
            RewardResult(
                float(reward),
                MappingProxyType(dict(sorted(c.items()))),
                spec_hash,
                missing,
                outcomes[i],
                outcome_code(outcomes[i]),
                sg,
            )
        )
    return results


def _pair_components(
    spec: RewardSpec,
    c: dict[str, float],
    render: np.ndarray | None,
    target: np.ndarray,
    extra: dict,
) -> SceneGraphScore | None:
    """Adds the per-pair components (IoU, scene graph, code length) to ``c``."""
    sg = None
    if "iou" in spec.weights:
        rm, tm, bg = extra["render_masks"], extra["target_masks"], extra["backgrounds"]
        if rm is not None and tm is not None:
            c["iou"] = float(image.iou(image.mask_foreground(rm), image.mask_foreground(tm)))
        elif bg is not None and render is not None:
            b = image.as_float(bg)
            fr = image.foreground(image.as_float(render), b)
            c["iou"] = float(image.iou(fr, image.foreground(image.as_float(target), b)))
    if "scene_graph" in spec.weights:
        pred, goal = extra["scenes"], extra["target_scenes"]
        if pred is not None and goal is not None:
            sg = scene_graph_score(pred, goal)
            c["scene_graph"] = sg.score
    if "svg_elements" in spec.weights:
        shapes, goal_shapes = extra["elements"], extra["target_elements"]
        if shapes is not None and goal_shapes is not None:
            c["svg_elements"] = svg_elements_score(shapes, goal_shapes)
    if "code_length" in spec.weights:
        code, ref = extra["codes"], extra["reference_codes"]
        if code is not None and ref is not None:
            c["code_length"] = program.code_length_reward(code, ref)
    return sg


def score(
    render: np.ndarray | None,
    target: np.ndarray,
    spec: RewardSpec | None = None,
    outcome: str = "ok",
    render_masks: np.ndarray | None = None,
    target_masks: np.ndarray | None = None,
    scene: Scene | None = None,
    target_scene: Scene | None = None,
    code: str | None = None,
    reference_code: str | None = None,
    background: np.ndarray | None = None,
) -> RewardResult:
    """Score one pair: ``score_batch`` with N = 1, so single and batch agree."""
    return score_batch(
        [render], [target], spec, [outcome], [render_masks], [target_masks],
        [scene], [target_scene], [code], [reference_code], [background],
    )[0]  # fmt: skip
