"""The demo: three baseline agents against a small target set, as a report and a picture.

:func:`run_demo` starts an embedded :class:`~derender.farm.local.LocalFarm` (or uses a given
address), makes the targets, runs the oracle, random and search agents on each, re-scores
every final program under every reward preset, and measures the scene-graph F1 of what the
program built. :func:`write_report` writes ``report.md`` (the table, the search agent's
reward per render budget) and ``contact_sheet.png`` (target | render per agent, one row per
target).

Both environments: after the CLEVR part, the same agents run on ``svg_targets`` SVG
compositions (the farm gets one SVG worker; a farm at ``address`` without SVG workers skips
this part), re-scored under the SVG presets, in a second section of the report and
``contact_sheet_svg.png``. It takes seconds: an SVG step is milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from ..protocol.results import ServerInfo, StepResult
from ..protocol.targets import Target
from ..reward.spec import SVG_PRESETS
from ..rl.prompt import info_canvas
from ..scenes import GeneratorConfig, generate_scene
from ..scenes.frame import default_engine
from ..svg.generator import SvgGeneratorConfig, generate
from .agents import Agent, Attempt, SearchAgent, default_agents

if TYPE_CHECKING:
    from ..protocol.client import Client


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs. Defaults finish in minutes on two CPU cores (see the README)."""

    targets: int = 3
    budgets: tuple[int, ...] = (32, 128, 512)
    batch: int = 16
    min_objects: int = 3
    max_objects: int = 5
    scene_seed: int = 2026
    agent_seed: int = 0
    engine: str = field(default_factory=default_engine)  # EEVEE with a GPU, else Workbench
    size: int = 128
    height: int | None = None  # None: square
    samples: int | None = None  # render samples (Cycles, EEVEE); None: the frame's default
    workers: int = 2
    timeout: float = 300.0
    svg_targets: int = 3  # 0: CLEVR only
    svg_budgets: tuple[int, ...] = (16, 64, 256)
    svg_min_shapes: int = 2
    svg_max_shapes: int = 4

    def __post_init__(self) -> None:
        if self.targets < 1 or self.svg_targets < 0:
            raise ValueError(
                f"need targets >= 1, svg_targets >= 0: {self.targets, self.svg_targets}"
            )
        for name in ("budgets", "svg_budgets"):
            budgets = getattr(self, name)
            if not budgets or min(budgets) < 1:
                raise ValueError(f"{name} must be positive render counts, got {budgets}")


@dataclass
class AgentRow:
    """One agent's results over the target set."""

    agent: str
    rewards: dict[str, list[float]] = field(default_factory=dict)  # preset -> per target
    f1: list[float] = field(default_factory=list)
    renders: int = 0
    seconds: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)

    def mean(self, preset: str) -> float:
        return float(np.mean(self.rewards[preset]))

    @property
    def steps_per_s(self) -> float:
        return self.renders / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class DemoResult:
    config: DemoConfig
    info: ServerInfo
    targets: list[Target]
    rows: list[AgentRow]
    wall_s: float
    env: str = "clevr"
    svg: DemoResult | None = None  # the SVG part (env "svg"), None if it did not run

    @property
    def budgets(self) -> tuple[int, ...]:
        return self.config.svg_budgets if self.env == "svg" else self.config.budgets

    @property
    def presets(self) -> list[str]:
        """The presets this part's programs were re-scored under."""
        svg = self.env == "svg"
        return [p for p in self.info.reward_presets if (p in SVG_PRESETS) == svg]

    def row(self, agent: str) -> AgentRow:
        return next(r for r in self.rows if r.agent == agent)

    def search_curve(self) -> list[tuple[int, float]]:
        """(budget, mean over targets of the search agent's best reward within it)."""
        attempts = self.row(SearchAgent.name).attempts
        return [(b, float(np.mean([a.best_at(b) for a in attempts]))) for b in self.budgets]


def run_demo(
    cfg: DemoConfig, address: str | None = None, log: Callable[[str], None] = print
) -> DemoResult:
    """Run the agents; with no ``address``, on an embedded farm that is stopped after."""
    from ..protocol.client import Client

    t0 = time.perf_counter()
    farm = None
    if address is None:
        from ..farm.local import LocalFarm

        log(f"starting a local farm: {cfg.workers} {cfg.engine} workers at {cfg.size} px")
        farm = LocalFarm(
            workers=cfg.workers,
            engine=cfg.engine,
            size=cfg.size,
            height=cfg.height,
            samples=cfg.samples,
            svg_workers=1 if cfg.svg_targets else 0,
        ).start()
        address = farm.address
    try:
        with Client(address, timeout=cfg.timeout) as client:
            return _run(cfg, client, log, t0)
    finally:
        if farm is not None:
            farm.stop()


def _run(cfg: DemoConfig, client: Client, log: Callable[[str], None], t0: float) -> DemoResult:
    info = client.info()
    gen = GeneratorConfig(
        min_objects=cfg.min_objects, max_objects=cfg.max_objects, frame=info.frame
    )
    targets = [
        client.reset(scene=generate_scene(cfg.scene_seed, i, gen), masks=False)
        for i in range(cfg.targets)
    ]
    agents = default_agents(max(cfg.budgets), cfg.batch, cfg.agent_seed, gen)
    result = DemoResult(cfg, info, targets, _attempts(client, agents, targets, log), 0.0)
    _rescore(client, result)
    if cfg.svg_targets and "svg" in info.envs:
        result.svg = _run_svg(cfg, client, info, log)
    elif cfg.svg_targets:
        log("the farm has no SVG workers: skipping the SVG part")
    result.wall_s = time.perf_counter() - t0
    return result


def _run_svg(
    cfg: DemoConfig, client: Client, info: ServerInfo, log: Callable[[str], None]
) -> DemoResult:
    t0 = time.perf_counter()
    log(f"SVG: {cfg.svg_targets} compositions, search budgets {cfg.svg_budgets}")
    gen = SvgGeneratorConfig(
        info_canvas(info), min_shapes=cfg.svg_min_shapes, max_shapes=cfg.svg_max_shapes
    )
    targets = [
        client.reset(svg=generate(cfg.scene_seed, i, gen).to_svg(), masks=False)
        for i in range(cfg.svg_targets)
    ]
    agents = default_agents(max(cfg.svg_budgets), cfg.batch, cfg.agent_seed, gen, env="svg")
    rows = _attempts(client, agents, targets, log)
    result = DemoResult(cfg, info, targets, rows, time.perf_counter() - t0, env="svg")
    _rescore(client, result)
    return result


def _attempts(
    client: Client, agents: Sequence[Agent], targets: Sequence[Target], log: Callable[[str], None]
) -> list[AgentRow]:
    """Each agent on each target; the scene-graph F1 of what a CLEVR program built."""
    from ..reward import scene_graph_score

    rows = []
    for agent in agents:
        row = AgentRow(agent.name)
        for k, target in enumerate(targets):
            attempt = agent.solve(client, target)
            row.attempts.append(attempt)
            row.renders += attempt.renders
            row.seconds += attempt.seconds
            got = attempt.result.scene
            if target.env != "svg":
                row.f1.append(scene_graph_score(got, target.scene).f1 if got is not None else 0.0)
            log(
                f"  {agent.name:7s} target {k}: reward {attempt.result.reward:.3f} "
                f"({attempt.result.outcome}, {attempt.renders} renders)"
            )
        rows.append(row)
    return rows


def _rescore(client: Client, result: DemoResult) -> None:
    rows, targets = result.rows, result.targets
    for preset in result.presets:  # every final program under every preset of its env
        for row in rows:
            # step_many raises on a failed request, so every item is a StepResult
            results = cast(
                list[StepResult],
                client.step_many(
                    [a.script for a in row.attempts], [t.target_id for t in targets], preset=preset
                ),
            )
            row.rewards[preset] = [float(r.reward) for r in results]


# -- report -------------------------------------------------------------------------------
def contact_sheet(result: DemoResult) -> np.ndarray:
    """One row per target: the target, then each agent's final render (black if none)."""
    gap = 4
    rows = []
    for k, target in enumerate(result.targets):
        tiles = [target.image]
        for row in result.rows:
            image = row.attempts[k].result.image
            tiles.append(image if image is not None else np.zeros_like(target.image))
        h = target.image.shape[0]
        spacer = np.full((h, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([x for t in tiles for x in (t, spacer)][:-1], axis=1))
    w = rows[0].shape[1]
    spacer = np.full((gap, w, 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, spacer)][:-1], axis=0)


def _labelled(sheet: np.ndarray, labels: Sequence[str], tile_w: int, gap: int = 4) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = 16
    canvas = Image.new("RGB", (sheet.shape[1], sheet.shape[0] + band), "white")
    canvas.paste(Image.fromarray(sheet), (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        draw.text((i * (tile_w + gap) + 2, 2), text, fill="black")
    return np.asarray(canvas)


def _table(result: DemoResult) -> list[str]:
    """The agents' table: mean reward per preset (and scene-graph F1 for CLEVR), cost."""
    presets, clevr = result.presets, result.env != "svg"
    head = ["agent", *[f"reward ({p})" for p in presets]]
    head += ["scene-graph F1"] * clevr + ["renders", "steps/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result.rows:
        cells = [row.agent, *[f"{row.mean(p):.3f}" for p in presets]]
        cells += [f"{np.mean(row.f1):.3f}"] if clevr else []
        cells += [str(row.renders), f"{row.steps_per_s:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _curve(result: DemoResult, what: str) -> list[str]:
    preset = "seed-svg" if result.env == "svg" else result.info.default_preset
    return [
        f"Batched blocked Metropolis-Hastings over {what}, {result.config.batch} proposals per "
        f"round; best `{preset}` reward found within each budget (mean over targets).",
        "",
        "| budget (renders) | best reward |",
        "|---|---|",
        *[f"| {b} | {r:.3f} |" for b, r in result.search_curve()],
    ]


def _svg_section(svg: DemoResult, sheet_name: str) -> list[str]:
    cfg, canvas = svg.config, svg.info.canvas or {}
    return [
        "",
        "## SVG environment",
        "",
        f"{cfg.svg_targets} compositions ({cfg.svg_min_shapes}-{cfg.svg_max_shapes} shapes, "
        f"seed {cfg.scene_seed}) on a {canvas.get('width')}x{canvas.get('height')} px canvas, "
        f"one SVG worker. Wall time {svg.wall_s:.1f} s.",
        "",
        *_table(svg),
        "",
        "The oracle sends the target's own document; random draws a composition from the "
        "generator's prior; search edits one element of the SVG element list per proposal.",
        "",
        *_curve(svg, "SVG element lists"),
        "",
        f"![SVG contact sheet]({sheet_name})",
    ]


def report_markdown(
    result: DemoResult,
    sheet_name: str = "contact_sheet.png",
    svg_sheet_name: str = "contact_sheet_svg.png",
) -> str:
    cfg, info = result.config, result.info
    lines = [
        "# derender demo",
        "",
        f"{cfg.targets} targets ({cfg.min_objects}-{cfg.max_objects} objects, scene seed "
        f"{cfg.scene_seed}), engine `{info.engine}` at {info.frame.width}x{info.frame.height}"
        f" px, frame `{info.frame_hash}`, {cfg.workers} workers. Default preset "
        f"`{info.default_preset}`. Wall time {result.wall_s:.1f} s.",
        "",
        *_table(result),
        "",
        "Rewards are means over the targets of each agent's final program, re-scored under "
        "every preset; scene-graph F1 compares the scene read back from Blender with the "
        "target (objects matched within 0.5 m).",
        "",
        "## Search agent: reward per render budget",
        "",
        *_curve(result, "scene graphs"),
    ]
    parts = [result] + ([result.svg] if result.svg is not None else [])
    unavailable = sorted(
        {
            u
            for part in parts
            for row in part.rows
            for a in row.attempts
            for u in a.result.unavailable
        }
    )
    if unavailable:
        lines += [
            "",
            f"Components unavailable on this machine: {', '.join(unavailable)} "
            "(dropped from the presets, the other terms scaled up).",
        ]
    lines += [
        "",
        f"![contact sheet]({sheet_name})",
        "",
        "Columns: target, " + ", ".join(r.agent for r in result.rows) + ".",
    ]
    if result.svg is not None:
        lines += _svg_section(result.svg, svg_sheet_name)
    return "\n".join(lines) + "\n"


def write_report(result: DemoResult, out: Path) -> tuple[Path, Path]:
    """``out/report.md`` and ``out/contact_sheet.png`` (and ``contact_sheet_svg.png`` when
    the SVG part ran); returns the report's and the CLEVR sheet's paths."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    labels = ["target", *[r.agent for r in result.rows]]
    sheet_path = out / "contact_sheet.png"
    for part, path in ((result, sheet_path), (result.svg, out / "contact_sheet_svg.png")):
        if part is not None:
            sheet = _labelled(contact_sheet(part), labels, part.targets[0].image.shape[1])
            Image.fromarray(sheet).save(path)
    report_path = out / "report.md"
    report_path.write_text(report_markdown(result, sheet_path.name))
    return report_path, sheet_path
