"""One live LocalFarm for the adapter tests, serving both kinds (Blender workers and an SVG
worker); DERENDER_ADDRESS points the adapters at it."""

from __future__ import annotations

import os

import pytest
from derender.farm.local import LocalFarm
from derender.protocol.client import Client
from derender.protocol.messages import SeedTarget, SvgTarget
from derender.rl.integrations import core
from derender.scenes import GeneratorConfig, Scene, dsl_program, generate_scene
from derender.svg import generate
from derender.svg.generator import moved


@pytest.fixture(scope="package")
def farm_address():
    with LocalFarm(workers=2, engine="workbench", size=64, svg_workers=1) as farm:
        old = os.environ.get(core.ADDRESS_VAR)
        os.environ[core.ADDRESS_VAR] = farm.address  # what trainers' workers see
        core._default = None
        try:
            yield farm.address
        finally:
            if core._default is not None:
                core._default.close()
                core._default = None
            if old is None:
                os.environ.pop(core.ADDRESS_VAR, None)
            else:
                os.environ[core.ADDRESS_VAR] = old


@pytest.fixture(scope="package")
def cases(farm_address):
    """(ground truth, oracle completion, wrong completion) for two seeded targets."""
    with Client(farm_address) as client:
        frame = client.info().frame
    out = []
    for seed in (21, 22):
        scene = generate_scene(seed, 0, GeneratorConfig(frame=frame))
        wrong = Scene(tuple(o.moved(dx=2.0, dy=-1.0) for o in scene.objects[:1]))
        gt = core.ground_truth_json(SeedTarget(seed, 0))
        out.append(
            (
                gt,
                f"Here you go:\n```python\n{dsl_program(scene)}```\n",
                f"```python\n{dsl_program(wrong)}```",
            )
        )
    return out


@pytest.fixture(scope="package")
def svg_cases(farm_address):
    """(ground truth, oracle completion, wrong completion) for two SVG targets: the truth
    names the whole document, the wrong answer moves one shape."""
    out = []
    for index in (0, 1):
        comp = generate(31, index)
        gt = core.ground_truth_json(SvgTarget(comp.to_svg()))
        wrong = moved(comp, 0, 7, -5).to_svg()
        out.append((gt, f"Here it is:\n```svg\n{comp.to_svg()}\n```\n", f"```xml\n{wrong}\n```"))
    return out
