"""The attack suite, in-process runners (corpus: ``attacks/*.txt``, see ``conftest.py``).

``test_attack``: each sandboxed script goes through ``Service.step`` from a function shaped
like a server's request handler, whose local ``target`` (and a module-level cache) holds
the target being scored. It must get its expected outcome, leak nothing of that target
(stdout, message, readback), write no file, and leave nothing behind: the next request
renders the empty frame pixel-identically, the frame checks clean, and every ``# probe:``
reads as before. Scripts of the ownership class start with no cached asset (a fresh
worker) and are followed by a later request: the assets it gets equal freshly built ones,
and a DSL step and a target render of a reference scene are pixel-identical to before.

``test_escaped_attack``: a simulated escape. The runner substitutes raw, unrestricted
Python for the sandboxed script inside ``Service.step``, as code past the language layer
would run; the frame check must report ``frame_tampered`` and reset must undo the change.
An edit to a cached asset that its own step does not render (expected ``ok``) is found by
the next render that uses the asset: that later step renders it as built and asks for its
worker's replacement.

Scripts that kill or hang a process run in ``test_attacks_farm.py``. Known holes are
strict xfails listed in ``attacks/HOLES.txt``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from derender.scenes import dsl_program
from derender.scenes.model import Scene, SceneObject

# Files the file-touching attacks aim at (relative ones land in the test's cwd).
TARGETS = ("/tmp/derender-attack.blend", "/tmp/derender-attack.png", "attack.blend", "attack.png")
# Longer than the sandbox conftest's 0.3 s: the recursion scripts build 100k-deep chains
# in a ticking loop, which must not time out on a loaded 2-core machine.
DEADLINE_S = 1.0

# The secret a serving process holds while the script runs (see _serve).
SECRET_ID = "t-5ec2e7a46e7c0ffe"
SECRET_XY = (1.2345678, -2.3456789)
SERVED_TARGETS: dict[str, Any] = {}  # a server's target cache, at module level
MESSAGE_CAP = 16_384  # ScriptLimits().max_output_bytes, the cap on what a script prints

# A later request's scene: every shape, both materials, several colours.
REFERENCE = Scene(
    (
        SceneObject("cube", "large", "metal", "red", -1.5, 1.0, 0.3),
        SceneObject("sphere", "small", "rubber", "blue", 1.2, 1.4),
        SceneObject("cylinder", "large", "rubber", "green", 0.0, -1.2, 0.7),
        SceneObject("sphere", "large", "metal", "gray", 1.8, -1.6),
        SceneObject("cube", "small", "rubber", "yellow", -2.0, -1.8, 1.1),
        SceneObject("cylinder", "small", "metal", "purple", 2.3, 0.4),
    )
)
_MATERIALS = ("rubber", "metal")
_COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
_SHAPES = ("cube", "sphere", "cylinder")


@pytest.fixture(scope="module")
def service(frame_spec):
    from derender.addon.sandbox.limits import ScriptLimits
    from derender.addon.service import Service

    return Service(frame_spec, ScriptLimits(deadline_s=DEADLINE_S))


def _secret_target() -> Any:
    from derender.protocol.targets import Target

    scene = Scene((SceneObject("cylinder", "large", "metal", "purple", *SECRET_XY, 0.4321),))
    return Target(SECRET_ID, scene, np.zeros((4, 4, 3), np.uint8), None, "frame-hash")


def _serve(service: Any, script: str, target: Any) -> Any:
    """What a serving process does: hold the target it will score (``target``, a local an
    attacker can name) while the script runs."""
    SERVED_TARGETS[target.target_id] = target
    return service.step(script, masks=False)


def _assert_no_leak(result: Any) -> None:
    # The message goes back to the agent like stdout: bounded like stdout.
    assert len(result.message) <= MESSAGE_CAP, f"a {len(result.message)}-character message"
    text = f"{result.stdout}\n{result.message}"
    assert SECRET_ID not in text, "the target id reached the agent"
    assert str(SECRET_XY[0]) not in text and str(SECRET_XY[1]) not in text, "target coordinates"
    for obj in result.scene.objects if result.scene is not None else ():
        assert abs(obj.x - SECRET_XY[0]) > 1e-3 or abs(obj.y - SECRET_XY[1]) > 1e-3, (
            "the agent rebuilt the target's object"
        )


def _probe(expr: str | None) -> Any:
    if expr is None:
        return None
    import bpy
    from derender.addon import assets

    return eval(expr, {"bpy": bpy, "assets": assets})


# -- fresh worker state and what a later request gets -----------------------------------------
def _drop_cached_assets() -> None:
    """Delete every cached asset: the next DSL call or target render builds them anew, as
    in a worker that has not made them yet."""
    import bpy
    from derender.addon import assets

    bpy.data.batch_remove(assets.cached())
    assets.trim()  # forgets the entries that are gone


def _restore(service: Any, spec: Any, factory: bool) -> None:
    """Containment between scripts: a fresh frame and no cached assets. After a script
    that passed its checks that is all it can have left; after one that did not (a hole:
    it may have changed what even a rebuilt frame keeps), Blender is reset to its factory
    state first, so that the hole shows in its own test only."""
    import bpy

    if factory:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    service.built_frame.build(spec)
    _drop_cached_assets()


def _asset_dumps(dumps: Any) -> dict[Any, dict[str, Any]]:
    """What the next request gets from the asset caches (built now if missing)."""
    from derender.addon import assets

    out: dict[Any, dict[str, Any]] = {s: dumps.mesh(assets.shape_mesh(s)) for s in _SHAPES}
    for m in _MATERIALS:
        for c in _COLORS:
            out[(m, c)] = dumps.material(assets.material(m, c))
    return out


@pytest.fixture(scope="module")
def reference(service, frame_spec, dumps) -> dict[str, Any]:
    """Freshly built assets and the reference scene's renders, before any attack."""
    _restore(service, frame_spec, factory=True)
    ref = {
        "empty": service.render_scene(Scene(()), masks=False).image,
        "target": service.render_scene(REFERENCE, masks=False).image,
        "step": service.step(dsl_program(REFERENCE), masks=False).image,
        "assets": _asset_dumps(dumps),
    }
    assert ref["step"] is not None and np.array_equal(ref["step"], ref["target"])
    _restore(service, frame_spec, factory=False)
    return ref


@pytest.fixture
def attack_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for one script; it must stay empty."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _check_later_requests(service: Any, reference: dict[str, Any], spec: Any) -> None:
    assert service.built_frame.differences(spec) == []
    after = service.render_scene(Scene(()), masks=False).image
    assert np.array_equal(after, reference["empty"]), "the next request sees a changed frame"


def _check_assets(service: Any, reference: dict[str, Any], dumps: Any) -> None:
    now = _asset_dumps(dumps)
    changed = [key for key, d in now.items() if not dumps.close(d, reference["assets"][key])]
    assert changed == [], f"the next request gets edited shared assets: {changed}"
    step = service.step(dsl_program(REFERENCE), masks=False)
    assert step.outcome == "ok" and np.array_equal(step.image, reference["step"])
    target = service.render_scene(REFERENCE, masks=False).image
    assert np.array_equal(target, reference["target"]), "a later target render changed"


# A generator finalized after its globals were dropped reports an "ignored" NameError.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_attack(service, reference, frame_spec, attack_cwd: Path, attack, dumps) -> None:
    from derender.addon.sandbox.errors import RECYCLE_OUTCOMES

    existing = {t for t in TARGETS if os.path.exists(t)}
    before = _probe(attack.probe)
    passed = False
    try:
        result = _serve(service, attack.script, _secret_target())
        assert result.outcome == attack.expected, (result.outcome, result.message)
        if attack.expected != "ok":
            assert result.image is None and result.message
        assert result.recycle == (attack.expected in RECYCLE_OUTCOMES)
        _assert_no_leak(result)
        _check_later_requests(service, reference, frame_spec)
        if attack.cls == "ownership":
            _check_assets(service, reference, dumps)
        assert _probe(attack.probe) == before, f"{attack.probe} changed for later requests"
        assert list(attack_cwd.iterdir()) == []
        assert {t for t in TARGETS if os.path.exists(t)} == existing
        passed = True
    finally:
        _restore(service, frame_spec, factory=not passed)


def _raw_runner(script: str, frame: Any, limits: Any = None, seed: int = 0) -> Any:
    """``run_script`` for code that escaped: runs ``script`` as plain Python and reports ok.
    An escape happens in agent code, which the real runner follows by distrusting the
    frame (and so the cached assets); so does this one."""
    import bpy
    from derender.addon import assets
    from derender.addon.sandbox.limits import ScriptLimits
    from derender.addon.sandbox.runner import RunOutcome
    from derender.addon.sandbox.session import ScriptSession

    try:
        exec(compile(script, "<escaped>", "exec"), {"bpy": bpy, "assets": assets})
    finally:
        frame.distrust()
    return RunOutcome("ok", "", None, ""), ScriptSession(frame, limits or ScriptLimits(), seed)


def test_escaped_attack(service, reference, frame_spec, monkeypatch, escaped_attack) -> None:
    from derender.addon import service as service_module

    before = _probe(escaped_attack.probe)
    passed = False
    try:
        with monkeypatch.context() as patch:
            patch.setattr(service_module, "run_script", _raw_runner)
            result = service.step(escaped_attack.script, masks=False)
        assert result.outcome == escaped_attack.expected, (result.outcome, result.message)
        asset_edit = escaped_attack.expected == "ok"
        assert result.recycle != asset_edit and (result.image is None) != asset_edit
        # A later, sandboxed request that renders every shape and several materials.
        later = service.step(dsl_program(REFERENCE), masks=False)
        assert later.outcome == "ok" and np.array_equal(later.image, reference["step"])
        assert later.recycle == asset_edit, "a later render used an edited asset unnoticed"
        assert _probe(escaped_attack.probe) == before, f"{escaped_attack.probe} survived reset"
        _check_later_requests(service, reference, frame_spec)
        passed = True
    finally:
        _restore(service, frame_spec, factory=not passed)


def test_corpus_covers_every_class(attack_corpus, attack_holes) -> None:
    """At least 150 scripts, 5+ per class, 30+ benign ones, unique names; every listed
    hole names a script of the corpus."""
    names = [a.name for a in attack_corpus]
    assert len(names) == len(set(names))
    per_class = Counter(a.cls for a in attack_corpus)
    expected = {
        "classic",
        "imports",
        "format",
        "secrets",
        "ownership",
        "deadlines",
        "memory",
        "recursion",
        "frame",
        "frame_escaped",
        "benign",
    }
    assert set(per_class) == expected
    assert all(n >= 5 for n in per_class.values()), per_class
    assert sum(1 for a in attack_corpus if a.cls != "benign") >= 150
    assert per_class["benign"] >= 30
    assert all(a.expected == "ok" for a in attack_corpus if a.cls == "benign")
    unknown = set(attack_holes) - set(names) - {"default_address_space_limit"}
    assert unknown == set(), f"HOLES.txt names no corpus script: {unknown}"
