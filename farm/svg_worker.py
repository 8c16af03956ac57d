"""The light farm worker: renders agent SVG with cairosvg, no Blender.

``python -m derender.farm.svg_worker --connect ipc://SOCK --identity ID --role svg --config JSON``,
started by the farm's supervisor in the same OS sandbox as the Blender workers (bwrap:
no network, read-only root, uid 65534, seccomp) and driven by the same message loop
(:mod:`derender.farm.worker_loop`). It runs ``svg`` jobs only: ``{"kind": "svg", "job",
"script", "masks", "elements"}`` -> the step-result members a Blender step worker returns
(``outcome``, ``message``, ``image``, ``masks`` ...) plus ``elements``, the drawn shapes'
descriptors the broker's structural reward matches. Like a Blender step worker it never
sees a target: the broker holds them, and scores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..protocol.results import ScriptRun
from ..svg.policy import SvgLimits
from ..svg.render import render
from . import worker_loop
from .config import FarmConfig
from .jobs import SVG
from .os_sandbox import confinement_gaps
from .worker_loop import WrongRole


class SvgWorker:
    """Runs ``svg`` jobs on the farm's canvas; ``handle`` maps a job to result members."""

    def __init__(self, config: FarmConfig, role: str) -> None:
        if role != SVG:
            raise WrongRole(f"an SVG worker has role {SVG!r}, not {role!r}")
        self.frame = config.canvas()
        self.limits = SvgLimits(deadline_s=config.svg_deadline)
        self.unconfined = confinement_gaps() if config.os_sandbox else []
        # cairosvg, cairocffi and libcairo load now, not in the first job's deadline.
        render('<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg>', self.frame)

    def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        if job.get("kind") != "svg":
            raise WrongRole(f"an SVG worker does not run {job.get('kind')!r} jobs")
        worker_loop.require_confinement(self.unconfined)
        t0 = time.perf_counter()
        res = render(str(job["script"]), self.frame, self.limits, bool(job.get("elements", True)))
        masks = res.masks if job.get("masks", True) else None
        timings = {**res.timings, "service": time.perf_counter() - t0}
        run = ScriptRun(res.outcome, res.message, image=res.image, masks=masks,
                        elements=res.elements, timings=timings)  # fmt: skip
        return run.to_wire()


def main(argv: Sequence[str] | None = None) -> int:
    return worker_loop.main(argv, SvgWorker, "python -m derender.farm.svg_worker", (SVG,))


if __name__ == "__main__":
    raise SystemExit(main())
