"""Gymnasium environments ``derender/CLEVR-v0`` and ``derender/SVG-v0``: rebuild the target.

Importing this module registers the id. ``gymnasium.make("derender/CLEVR-v0")`` with no
``address`` starts an embedded :class:`~derender.farm.local.LocalFarm` and stops it on
``close()``; with an address it uses a running farm (or ``derender serve``), which is how
several envs, e.g. the members of an ``AsyncVectorEnv``, share one farm. With an address
where nothing answers, the constructor raises ``ServerUnreachable`` within
``connect_timeout`` seconds. ``preset=None`` scores with the server's default preset
(``graph_image`` unless the farm was started with another).

An episode is one target scene drawn from the seeded generator with the curriculum knobs
given to the constructor. The action is the program's source text. In single-step mode
(``max_turns=1``) the episode terminates after one program. With ``max_turns=k`` the agent
sees its own last render and an error heatmap and submits revised programs until the
reward reaches ``reward_threshold`` (terminated) or k programs were tried (truncated).
``info`` carries the outcome, the reward components and the program's stdout; wall-clock
timings stay out of it so that steps are reproducible.

``derender/SVG-v0`` is the same class with ``env="svg"``: the target is a seeded 2D
composition or, with ``svg_curriculum={"kind": "icons"}`` (or ``"mixed"``), a bundled icon
(:func:`derender.svg.generate` with the ``svg_curriculum`` knobs, made here and
sent as the target document, so it never depends on the server's generator), the action is
an SVG document, the ``frame`` text describes the canvas, and the images are the canvas
size (64² by default), and ``preset=None`` scores with ``seed-svg``.
``options={"svg": document}`` resets to a document of your own.
Without ``address`` it starts an SVG-only LocalFarm (``workers`` SVG workers, no Blender).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..protocol.messages import ServerLimits
from ..reward.spec import SVG_DEFAULT_PRESET
from ..scenes import (
    GeneratorConfig,
    Scene,
    generate_scene,
    scene_from_clevr,
    universe,
    write_program,
)
from ..scenes.programs import Dialect
from ..svg.generator import SvgGeneratorConfig, generate
from .prompt import CHARSET, Env, canvas_text, frame_text, info_canvas

ENV_ID = "derender/CLEVR-v0"
SVG_ENV_ID = "derender/SVG-v0"
FRAME_TEXT_CHARS = 4096
_HOLDOUTS: Mapping[str, Mapping[str, Sequence[str]] | None] = {
    "none": None,
    "cogent_a": universe.COGENT_A,
    "cogent_b": universe.COGENT_B,
}


def curriculum(
    min_objects: int = universe.MIN_OBJECTS,
    max_objects: int = universe.MAX_OBJECTS,
    shapes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    materials: Sequence[str] | None = None,
    sizes: Sequence[str] | None = None,
    holdout: str | Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """GeneratorConfig keyword arguments for the env's curriculum knobs.

    ``holdout`` restricts colours per shape: ``"cogent_a"`` / ``"cogent_b"`` (CLEVR CoGenT
    conditions) or an explicit ``{shape: colours}`` mapping.
    """
    kw: dict[str, Any] = {"min_objects": min_objects, "max_objects": max_objects}
    for name, value in (
        ("shapes", shapes),
        ("colors", colors),
        ("materials", materials),
        ("sizes", sizes),
    ):
        if value is not None:
            kw[name] = tuple(value)
    if isinstance(holdout, str):
        if holdout not in _HOLDOUTS:
            raise ValueError(
                f"holdout must be one of {tuple(_HOLDOUTS)} or a mapping, got {holdout!r}"
            )
        kw["shape_colors"] = _HOLDOUTS[holdout]
    elif holdout is not None:
        kw["shape_colors"] = {k: tuple(v) for k, v in holdout.items()}
    return kw


class DerenderEnv(gym.Env[dict[str, Any], str]):
    """See the module docstring. Observation keys: ``target`` (uint8 H×W×3), ``frame``
    (text); with ``max_turns > 1`` also ``render`` and ``heatmap`` (uint8 H×W×3, from
    :func:`derender.reward.heatmap`; both black before the first program)."""

    # Gymnasium declares ``metadata`` as an instance attribute, and gym.make reads the class's.
    # render_fps: how fast a recorder should play the frames back (one frame per step).
    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}  # noqa: RUF012

    def __init__(
        self,
        address: str | None = None,
        *,
        env: Env = "clevr",
        svg_curriculum: Mapping[str, Any] | None = None,
        max_turns: int = 1,
        reward_threshold: float | None = None,
        preset: str | None = None,
        render_steps: bool = True,
        scene_seed: int = 0,
        min_objects: int = universe.MIN_OBJECTS,
        max_objects: int = universe.MAX_OBJECTS,
        shapes: Sequence[str] | None = None,
        colors: Sequence[str] | None = None,
        materials: Sequence[str] | None = None,
        sizes: Sequence[str] | None = None,
        holdout: str | Mapping[str, Sequence[str]] | None = None,
        workers: int = 2,
        engine: str | None = None,
        size: int | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        render_mode: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self._knobs = curriculum(
            min_objects, max_objects, shapes, colors, materials, sizes, holdout
        )
        GeneratorConfig(**self._knobs)  # fail now, naming the bad knob, not at reset
        if env not in ("clevr", "svg"):
            raise ValueError(f"env must be 'clevr' or 'svg', got {env!r}")
        self.env = env
        self._svg_knobs = dict(svg_curriculum or {})
        SvgGeneratorConfig(**self._svg_knobs)
        self.max_turns = max_turns
        self.reward_threshold = reward_threshold
        # The server's default preset is a CLEVR one: SVG steps default to seed-svg.
        self.preset = SVG_DEFAULT_PRESET if preset is None and env == "svg" else preset
        self.render_steps = render_steps
        self.scene_seed = scene_seed
        self.render_mode = render_mode
        self.farm: Any = None
        if address is None:
            from ..farm.local import LocalFarm

            if env == "svg":
                self.farm = LocalFarm(
                    workers=0, target_workers=0, svg_workers=workers, svg_size=size or 64
                ).start()
            else:
                self.farm = LocalFarm(workers=workers, engine=engine, size=size or 128).start()
            address = self.farm.address
        self.address = address
        from ..protocol.client import Client

        try:
            self._client = Client(address, timeout=timeout)
            self._client.ping(timeout=connect_timeout)  # fail fast where nothing listens
            self.server_info = self._client.info()
            frame = self.server_info.frame
            self._generator = GeneratorConfig(frame=frame, **self._knobs)
            self._frame_text = frame_text(frame)
            h, w = frame.height, frame.width
            if env == "svg":  # EnvNotServed from a farm without SVG workers
                canvas = info_canvas(self.server_info)
                self._svg_generator = SvgGeneratorConfig(canvas=canvas, **self._svg_knobs)
                self._frame_text = canvas_text(canvas)
                h, w = canvas.height, canvas.width
        except BaseException:
            self.close()  # do not leave an embedded farm running
            raise
        image = spaces.Box(0, 255, (h, w, 3), np.uint8)
        obs: dict[str, spaces.Space[Any]] = {
            "target": image,
            "frame": spaces.Text(FRAME_TEXT_CHARS, min_length=0, charset=CHARSET),
        }
        if max_turns > 1:
            obs["render"] = image
            obs["heatmap"] = image
        self.observation_space = spaces.Dict(obs)
        limits = self.server_info.protocol.get("limits", {})
        max_chars = int(limits.get("max_script_chars", ServerLimits().max_script_chars))
        self.action_space = spaces.Text(max_chars, min_length=0, charset=CHARSET)
        self._target: Any = None
        self._render: np.ndarray | None = None
        self._turn = 0

    # -- episode ------------------------------------------------------------------------
    def _scene(self, options: Mapping[str, Any] | None) -> Scene:
        options = options or {}
        if "scene" in options:
            scene = options["scene"]
            return scene if isinstance(scene, Scene) else scene_from_clevr(scene)
        index = options.get("index")
        if index is None:
            index = int(self.np_random.integers(0, 2**31 - 1))
        return generate_scene(self.scene_seed, int(index), self._generator)

    def _svg(self, options: Mapping[str, Any] | None) -> str:
        options = options or {}
        if "svg" in options:
            return str(options["svg"])
        index = options.get("index")
        if index is None:
            index = int(self.np_random.integers(0, 2**31 - 1))
        return generate(self.scene_seed, int(index), self._svg_generator).to_svg()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new target. ``options``: ``{"index": i}`` (scene i of the stream) or
        ``{"scene": Scene | CLEVR dict}`` (``{"svg": document}`` for SVG); otherwise a
        random scene of the stream."""
        super().reset(seed=seed)
        if self.env == "svg":
            self._target = self._client.reset(svg=self._svg(options), masks=False)
        else:
            self._target = self._client.reset(scene=self._scene(options), masks=False)
        self._render = None
        self._turn = 0
        blank = np.zeros_like(self._target.image)
        return self._observation(blank, blank), self._info()

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._target is None:
            raise RuntimeError("call reset() before step()")
        if not isinstance(action, str):
            raise TypeError(f"the action is the program's source text, got {type(action)}")
        from ..protocol.errors import ProtocolError

        try:
            res = self._client.step(
                action, self._target.target_id, preset=self.preset, render=self.render_steps
            )
        except ProtocolError as exc:
            if exc.code != "unknown_target":
                raise
            # The farm evicted the target (LRU): make it again and send the program again.
            if self.env == "svg":
                self._target = self._client.reset(svg=self._target.svg, masks=False)
            else:
                self._target = self._client.reset(scene=self._target.scene, masks=False)
            res = self._client.step(
                action, self._target.target_id, preset=self.preset, render=self.render_steps
            )
        from ..reward import heatmap

        self._turn += 1
        target = self._target.image
        render = res.image if res.image is not None else np.zeros_like(target)
        self._render = render
        reward = float(res.reward) if np.isfinite(res.reward) else 0.0
        reached = self.reward_threshold is not None and reward >= self.reward_threshold
        terminated = self.max_turns == 1 or reached
        truncated = not terminated and self._turn >= self.max_turns
        info = self._info()
        info.update(
            outcome=res.outcome,
            message=res.message,
            line=res.line,
            stdout=res.stdout,
            # Gymnasium compares infos with == (its determinism check) and NaN != NaN, so a
            # component this server cannot compute (NaN; named in ``unavailable``) is left out.
            reward_components={k: v for k, v in res.components.items() if v == v},
            unavailable=list(res.unavailable),
            preset=res.preset,
            spec_hash=res.spec_hash,
        )
        obs = self._observation(render, heatmap(render, target))
        return obs, reward, terminated, truncated, info

    def _observation(self, render: np.ndarray, heat: np.ndarray) -> dict[str, Any]:
        obs: dict[str, Any] = {"target": self._target.image.copy(), "frame": self._frame_text}
        if self.max_turns > 1:
            obs["render"] = render.copy()
            obs["heatmap"] = heat.copy()
        return obs

    def _info(self) -> dict[str, Any]:
        return {
            "target_id": self._target.target_id,
            "frame_hash": self._target.frame_hash,
            "turn": self._turn,
            "max_turns": self.max_turns,
        }

    @property
    def target_scene(self) -> Scene:
        """The current target's scene: the answer, for oracles and evaluation only."""
        if self._target is None:
            raise RuntimeError("call reset() first")
        return self._target.scene

    def oracle_program(self, dialect: Dialect = "dsl") -> str:
        """The ground-truth program of the current target (``dsl`` or ``bpy``; for SVG its
        document, whatever ``dialect``): for baselines, warm-start data and checks; a plain
        string, so ``VectorEnv.call`` can fetch it."""
        if self.env == "svg":
            if self._target is None:
                raise RuntimeError("call reset() first")
            return str(self._target.svg)
        return write_program(self.target_scene, dialect)

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the target and the last render side by side."""
        if self.render_mode != "rgb_array" or self._target is None:
            return None
        last = self._render if self._render is not None else np.zeros_like(self._target.image)
        return np.concatenate([self._target.image, last], axis=1)

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()  # idempotent
        farm, self.farm = getattr(self, "farm", None), None
        if farm is not None:
            farm.stop()
        super().close()


def register() -> None:
    """Register ``derender/CLEVR-v0`` and ``derender/SVG-v0`` (idempotent). Gymnasium 1.x
    loads no plugin entry points, so the ids exist once this module is imported, which
    ``gym.make("derender.rl.env:derender/CLEVR-v0")`` also does."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:DerenderEnv")
    if SVG_ENV_ID not in gym.registry:
        gym.register(id=SVG_ENV_ID, entry_point=f"{__name__}:DerenderEnv", kwargs={"env": "svg"})


register()
