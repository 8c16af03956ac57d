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
MESSAGE_CAP = 16_384  # Limits().max_output_bytes, the cap on what a script prints

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
    from derender.addon.sandbox.limits import Limits
    from derender.addon.service import Service

    return Service(frame_spec, Limits(deadline_s=DEADLINE_S))


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
    for obj in result.readback.objects if result.readback is not None else ():
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
    assets.drop_modified()  # forgets the entries that are gone


def _restore(spec: Any, factory: bool) -> None:
    """Containment between scripts: a fresh frame and no cached assets. After a script
    that passed its checks that is all it can have left; after one that did not (a hole:
    it may have changed what even a rebuilt frame keeps), Blender is reset to its factory
    state first, so that the hole shows in its own test only."""
    import bpy
    from derender.addon import frame

    if factory:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    frame.build_frame(spec)
    _drop_cached_assets()


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, set):
        return tuple(sorted(value))
    try:
        return tuple(_plain(v) for v in value)
    except TypeError:
        return repr(value)


_ID_FIELDS = frozenset(
    {
        "name",
        "name_full",
        "session_uid",
        "users",
        "use_fake_user",
        "tag",
        "use_extra_user",
        "is_runtime_data",
    }
)


def _material_dump(mat: Any) -> dict[str, Any]:
    """Every value of a material that a render may read: its plain properties and every
    node input, and the node graph (names excluded: a suffixed asset name is harmless)."""
    out = {
        p.identifier: _plain(getattr(mat, p.identifier))
        for p in mat.bl_rna.properties
        if p.type in {"BOOLEAN", "INT", "FLOAT", "ENUM"} and p.identifier not in _ID_FIELDS
    }
    tree = mat.node_tree
    out["nodes"] = sorted(
        (
            n.bl_idname,
            n.name,
            tuple((s.identifier, _plain(getattr(s, "default_value", None))) for s in n.inputs),
        )
        for n in tree.nodes
    )
    out["links"] = sorted(
        (lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier)
        for lk in tree.links
    )
    return out


def _mesh_dump(mesh: Any) -> dict[str, Any]:
    """Every value of a mesh that a render may read: positions, faces with their corners'
    normals and UVs, edges, attributes, material slots. Faces and edges are listed in a
    canonical order: Blender's own order of them differs between two builds of one mesh."""
    uv_layers = list(mesh.uv_layers)
    attributes = [a for a in mesh.attributes if not a.name.startswith(".")]

    def value(attribute: Any, index: int) -> Any:
        item = attribute.data[index]
        for field in ("value", "vector", "color"):
            if hasattr(item, field):
                return _plain(getattr(item, field))
        return None

    def corner(i: int) -> tuple:
        return (
            mesh.loops[i].vertex_index,
            _plain(mesh.corner_normals[i].vector),
            tuple(_plain(layer.data[i].uv) for layer in uv_layers),
            tuple(value(a, i) for a in attributes if a.domain == "CORNER"),
        )

    faces = []
    for f in mesh.polygons:
        corners = [corner(i) for i in f.loop_indices]
        first = min(range(len(corners)), key=lambda k: corners[k][0])
        faces.append(
            (
                tuple(corners[first:] + corners[:first]),
                f.use_smooth,
                f.material_index,
                tuple(value(a, f.index) for a in attributes if a.domain == "FACE"),
            )
        )
    edges = sorted(
        (
            tuple(sorted(e.vertices)),
            tuple(value(a, e.index) for a in attributes if a.domain == "EDGE"),
        )
        for e in mesh.edges
    )  # (vertex pair, ...): the ints decide the order
    points = [
        (_plain(v.co), tuple(value(a, v.index) for a in attributes if a.domain == "POINT"))
        for v in mesh.vertices
    ]
    return {
        "points": points,
        "edges": edges,
        "faces": sorted(faces, key=lambda f: tuple(c[0] for c in f[0])),
        "attributes": sorted((a.name, a.domain, a.data_type) for a in attributes),
        "uv_layers": [layer.name for layer in uv_layers],
        "materials": tuple(m.name if m else None for m in mesh.materials),
    }


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-5: two builds of one mesh differ in normals by float noise."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-5
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _asset_dumps() -> dict[Any, dict[str, Any]]:
    """What the next request gets from the asset caches (built now if missing)."""
    from derender.addon import assets

    out: dict[Any, dict[str, Any]] = {s: _mesh_dump(assets.shape_mesh(s)) for s in _SHAPES}
    for m in _MATERIALS:
        for c in _COLORS:
            out[(m, c)] = _material_dump(assets.material(m, c))
    return out


@pytest.fixture(scope="module")
def reference(service, frame_spec) -> dict[str, Any]:
    """Freshly built assets and the reference scene's renders, before any attack."""
    _restore(frame_spec, factory=True)
    ref = {
        "empty": service.render_scene(Scene(()), masks=False).image,
        "target": service.render_scene(REFERENCE, masks=False).image,
        "step": service.step(dsl_program(REFERENCE), masks=False).image,
        "assets": _asset_dumps(),
    }
    assert ref["step"] is not None and np.array_equal(ref["step"], ref["target"])
    _restore(frame_spec, factory=False)
    return ref


@pytest.fixture
def attack_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for one script; it must stay empty."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _check_later_requests(service: Any, reference: dict[str, Any], spec: Any) -> None:
    from derender.addon.frame import frame_differences

    assert frame_differences(spec) == []
    after = service.render_scene(Scene(()), masks=False).image
    assert np.array_equal(after, reference["empty"]), "the next request sees a changed frame"


def _check_assets(service: Any, reference: dict[str, Any]) -> None:
    now = _asset_dumps()
    changed = [key for key, dump in now.items() if not _close(dump, reference["assets"][key])]
    assert changed == [], f"the next request gets edited shared assets: {changed}"
    step = service.step(dsl_program(REFERENCE), masks=False)
    assert step.outcome == "ok" and np.array_equal(step.image, reference["step"])
    target = service.render_scene(REFERENCE, masks=False).image
    assert np.array_equal(target, reference["target"]), "a later target render changed"


# A generator finalized after its globals were dropped reports an "ignored" NameError.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_attack(service, reference, frame_spec, attack_cwd: Path, attack) -> None:
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
            _check_assets(service, reference)
        assert _probe(attack.probe) == before, f"{attack.probe} changed for later requests"
        assert list(attack_cwd.iterdir()) == []
        assert {t for t in TARGETS if os.path.exists(t)} == existing
        passed = True
    finally:
        _restore(frame_spec, factory=not passed)


def _raw_runner(script: str, limits: Any = None, seed: int = 0) -> Any:
    """``run_script`` for code that escaped: runs ``script`` as plain Python and reports ok."""
    import bpy
    from derender.addon import assets
    from derender.addon.sandbox.limits import Limits
    from derender.addon.sandbox.runner import RunOutcome
    from derender.addon.sandbox.session import Session

    exec(compile(script, "<escaped>", "exec"), {"bpy": bpy, "assets": assets})
    return RunOutcome("ok", "", None, ""), Session(limits or Limits(), seed)


def test_escaped_attack(service, reference, frame_spec, monkeypatch, escaped_attack) -> None:
    from derender.addon import service as service_module

    before = _probe(escaped_attack.probe)
    passed = False
    try:
        with monkeypatch.context() as patch:
            patch.setattr(service_module, "run_script", _raw_runner)
            result = service.step(escaped_attack.script, masks=False)
        assert result.outcome == escaped_attack.expected, (result.outcome, result.message)
        assert result.recycle and result.image is None
        later = service.step("x = 1\n", masks=False)  # a later, sandboxed request
        assert later.outcome == "ok"
        assert _probe(escaped_attack.probe) == before, f"{escaped_attack.probe} survived reset"
        _check_later_requests(service, reference, frame_spec)
        passed = True
    finally:
        _restore(frame_spec, factory=not passed)


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
