"""Baseline agents: the oracle, a random program, and a search that uses the farm as its
likelihood.

Every agent writes CLEVR-DSL programs (:func:`derender.scenes.dsl_program`) and scores them
through a :class:`~derender.protocol.client.Client`, so they measure the environment end to
end: sandbox, render, reward. :class:`SearchAgent` is a batched, blocked
Metropolis–Hastings sampler over scene graphs in the spirit of SPIRAL's MCMC baseline: each
round proposes ``batch`` single-block edits of the current scene (move, recolour, reshape,
resize, change material, rotate, add or remove one object), scores all of them in one
pipelined ``step_many`` call so every farm worker is busy, and moves to the best proposal
with a Boltzmann acceptance on the reward difference. It is an anytime algorithm: its
best-so-far curve over renders is what the demo reports per budget.

The SVG environment (``env="svg"``) has the same three baselines over a
:class:`SearchSpace` of compositions (:mod:`derender.svg.generator`): the oracle sends the
target's own document, random a composition from the generator's prior, and search runs
the same sampler with single-element edits of the SVG element list (move one shape,
recolour it, replace it, add or remove one).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from ..protocol.results import StepResult
from ..protocol.targets import Target
from ..reward.spec import SVG_DEFAULT_PRESET
from ..rl.prompt import Env
from ..scenes import GeneratorConfig, Scene, SceneObject, dsl_program, generate_scene
from ..svg.generator import (
    PALETTES,
    Composition,
    SvgGeneratorConfig,
    generate,
    moved,
    recoloured,
    without,
)

if TYPE_CHECKING:  # agents take any connected client; importing it would load zmq
    from ..protocol.client import Client


@dataclass(frozen=True)
class Attempt:
    """An agent's answer for one target and what it cost."""

    agent: str
    script: str
    result: StepResult
    renders: int  # farm steps spent
    seconds: float
    curve: tuple[tuple[int, float], ...] = ()  # (renders so far, best reward so far)

    def best_at(self, budget: int) -> float:
        """The best reward found within ``budget`` renders (anytime agents)."""
        seen = [r for n, r in self.curve if n <= budget]
        if not seen:
            raise ValueError(f"no result within {budget} renders (first at {self.curve[0][0]})")
        return max(seen)


class Agent(Protocol):
    name: str

    def solve(self, client: Client, target: Target) -> Attempt: ...


def _one_shot(
    name: str, client: Client, target: Target, script: str, preset: str | None = None
) -> Attempt:
    t0 = time.perf_counter()
    res = client.step(script, target.target_id, preset=preset)
    return Attempt(name, script, res, 1, time.perf_counter() - t0, ((1, res.reward),))


class OracleAgent:
    """The ground truth: the target scene's DSL program, or an SVG target's own document."""

    name = "oracle"

    def solve(self, client: Client, target: Target) -> Attempt:
        if target.env == "svg":
            return _one_shot(self.name, client, target, str(target.svg), SVG_DEFAULT_PRESET)
        return _one_shot(self.name, client, target, dsl_program(target.scene))


State = TypeVar("State")


@dataclass(frozen=True)
class SearchSpace(Generic[State]):
    """What the random and search agents walk over: a prior, one-block proposals, the
    script a state is submitted as, and the preset it is scored with (None: the farm's)."""

    sample: Callable[[random.Random], State]
    propose: Callable[[random.Random, State], State]
    write: Callable[[State], str]
    preset: str | None = None


def search_space(env: Env = "clevr", config: Any = None) -> SearchSpace[Any]:
    """CLEVR scenes (``config`` a GeneratorConfig) or SVG compositions (an
    SvgGeneratorConfig, whose canvas must be the farm's)."""
    kind, make, edit, write, preset = _SPACES[env]
    cfg = config or kind()
    if not isinstance(cfg, kind):
        raise TypeError(f"env {env!r} searches with a {kind.__name__}, got {type(cfg)}")
    return SearchSpace(
        lambda rng: make(rng.getrandbits(62), 0, cfg),
        lambda rng, state: edit(rng, state, cfg),
        write,
        preset,
    )


class RandomAgent:
    """A random valid scene (or SVG composition) from the generator's prior."""

    name = "random"

    def __init__(self, seed: int = 0, config: Any = None, env: Env = "clevr") -> None:
        self.space = search_space(env, config)
        self._rng = random.Random(f"random-agent:{seed}")

    def sample(self) -> Any:
        return self.space.sample(self._rng)

    def solve(self, client: Client, target: Target) -> Attempt:
        script = self.space.write(self.sample())
        return _one_shot(self.name, client, target, script, self.space.preset)


# -- proposals ----------------------------------------------------------------------------
Move = Callable[[random.Random, list[SceneObject], GeneratorConfig], None]


def _random_object(rng: random.Random, cfg: GeneratorConfig) -> SceneObject:
    return SceneObject(
        rng.choice(cfg.shapes),
        rng.choice(cfg.sizes),
        rng.choice(cfg.materials),
        rng.choice(cfg.colors),
        rng.uniform(-cfg.bounds, cfg.bounds),
        rng.uniform(-cfg.bounds, cfg.bounds),
        rng.uniform(0.0, 2.0 * math.pi),
    )


def _move(rng: random.Random, objs: list[SceneObject], cfg: GeneratorConfig) -> None:
    i = rng.randrange(len(objs))
    step = rng.choice((0.1, 0.3, 1.0))  # metres: fine, medium and coarse moves
    o = objs[i]
    x = min(cfg.bounds, max(-cfg.bounds, o.x + rng.gauss(0.0, step)))
    y = min(cfg.bounds, max(-cfg.bounds, o.y + rng.gauss(0.0, step)))
    objs[i] = replace(o, x=x, y=y, pixel_coords=None)


def _attribute(name: str, choices: Callable[[GeneratorConfig], tuple[str, ...]]) -> Move:
    def move(rng: random.Random, objs: list[SceneObject], cfg: GeneratorConfig) -> None:
        i = rng.randrange(len(objs))
        # z=None: the resting height follows the (possibly new) shape and size
        changes: dict[str, Any] = {name: rng.choice(choices(cfg)), "z": None, "pixel_coords": None}
        objs[i] = replace(objs[i], **changes)

    return move


def _rotate(rng: random.Random, objs: list[SceneObject], cfg: GeneratorConfig) -> None:
    i = rng.randrange(len(objs))
    objs[i] = replace(objs[i], rotation=rng.uniform(0.0, 2.0 * math.pi), pixel_coords=None)


def _add(rng: random.Random, objs: list[SceneObject], cfg: GeneratorConfig) -> None:
    if len(objs) < cfg.max_objects:
        objs.append(_random_object(rng, cfg))


def _remove(rng: random.Random, objs: list[SceneObject], cfg: GeneratorConfig) -> None:
    if len(objs) > cfg.min_objects:
        objs.pop(rng.randrange(len(objs)))


MOVES: tuple[tuple[Move, float], ...] = (
    (_move, 4.0),
    (_attribute("color", lambda c: tuple(c.colors)), 2.0),
    (_attribute("shape", lambda c: tuple(c.shapes)), 1.0),
    (_attribute("size", lambda c: tuple(c.sizes)), 1.0),
    (_attribute("material", lambda c: tuple(c.materials)), 1.0),
    (_rotate, 0.5),
    (_add, 0.75),
    (_remove, 0.75),
)


def propose(rng: random.Random, scene: Scene, cfg: GeneratorConfig) -> Scene:
    """The scene with one block (one object's position or one attribute, or the object set)
    resampled; always a valid Scene."""
    objs = list(scene.objects)
    move = rng.choices([m for m, _ in MOVES], weights=[w for _, w in MOVES])[0]
    move(rng, objs, cfg)
    return Scene(tuple(objs))


def propose_svg(rng: random.Random, comp: Composition, cfg: SvgGeneratorConfig) -> Composition:
    """The composition with one element edited: moved by 1-8 px, recoloured, replaced by a
    fresh shape of the prior, or one added or removed (within the shape-count knobs)."""
    n = len(comp.shapes)
    kind = rng.choices(("move", "recolour", "replace", "add", "remove"), (4, 2, 1, 0.75, 0.75))[0]
    if n == 0 or (kind == "add" and n < cfg.max_shapes):
        one = generate(rng.getrandbits(62), 0, replace(cfg, min_shapes=1, max_shapes=1))
        return replace(comp, shapes=(*comp.shapes, *one.shapes))
    i = rng.randrange(n)
    if kind == "move":
        step = rng.choice((1, 3, 8))
        return moved(comp, i, round(rng.gauss(0, step)), round(rng.gauss(0, step)))
    if kind == "recolour":
        return recoloured(comp, i, rng.choice(PALETTES[cfg.palette]))
    if kind == "replace":
        one = generate(rng.getrandbits(62), 0, replace(cfg, min_shapes=1, max_shapes=1))
        return replace(comp, shapes=(*comp.shapes[:i], *one.shapes, *comp.shapes[i + 1 :]))
    if kind == "remove" and n > cfg.min_shapes:
        return without(comp, i)
    return comp


# env -> (its generator config, prior, proposal, writer, preset): what search_space builds
_SPACES: dict[
    str, tuple[type, Callable[..., Any], Callable[..., Any], Callable[[Any], str], str | None]
] = {
    "clevr": (GeneratorConfig, generate_scene, propose, dsl_program, None),
    "svg": (SvgGeneratorConfig, generate, propose_svg, Composition.to_svg, SVG_DEFAULT_PRESET),
}


class SearchAgent:
    """Batched blocked Metropolis–Hastings on the farm's reward (see the module docstring).

    ``budget`` renders in all: one batch of prior samples, then rounds of ``batch``
    proposals. ``temperature`` scales the acceptance of a worse best proposal.
    """

    name = "search"

    def __init__(
        self,
        budget: int = 128,
        batch: int = 16,
        seed: int = 0,
        config: Any = None,
        temperature: float = 0.005,
        env: Env = "clevr",
    ) -> None:
        if budget < 1 or batch < 1:
            raise ValueError(f"budget and batch must be >= 1, got {budget}, {batch}")
        self.budget, self.batch, self.seed = budget, batch, seed
        self.config, self.env = config, env
        self.space = search_space(env, config)
        self.temperature = temperature

    def solve(self, client: Client, target: Target) -> Attempt:
        rng = random.Random(f"search-agent:{self.seed}:{target.target_id}")
        prior = RandomAgent(rng.getrandbits(62), self.config, self.env)
        space = self.space
        t0 = time.perf_counter()
        used = 0
        curve: list[tuple[int, float]] = []
        best: tuple[float, Any, StepResult] | None = None
        current: tuple[float, Any] | None = None
        while used < self.budget:
            n = min(self.batch, self.budget - used)
            if current is None:
                scenes = [prior.sample() for _ in range(n)]
            else:
                scenes = [space.propose(rng, current[1]) for _ in range(n)]
            # step_many raises on a failed request, so every item is a StepResult
            results = cast(
                list[StepResult],
                client.step_many(
                    [space.write(s) for s in scenes], target.target_id, preset=space.preset
                ),
            )
            used += n
            r, i = max((res.reward, k) for k, res in enumerate(results))
            if (
                current is None
                or r >= current[0]
                or rng.random() < math.exp((r - current[0]) / max(self.temperature, 1e-12))
            ):
                current = (r, scenes[i])
            if best is None or r > best[0]:
                best = (r, scenes[i], results[i])
            curve.append((used, best[0]))
        assert best is not None
        script = space.write(best[1])
        return Attempt(self.name, script, best[2], used, time.perf_counter() - t0, tuple(curve))


def default_agents(
    budget: int = 128, batch: int = 16, seed: int = 0, config: Any = None, env: Env = "clevr"
) -> list[Agent]:
    """The three baselines of ``env``; random and search share the prior ``config``."""
    return [
        OracleAgent(),
        RandomAgent(seed, config, env),
        SearchAgent(budget, batch, seed, config, env=env),
    ]
