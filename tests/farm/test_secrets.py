"""A process that runs agent code holds nothing the agent may not see: no target.

The farm's step worker runs the scripts; a test reads that process's whole memory from
the host (``/proc/PID/mem``, every readable mapping) and searches it for the target it
was scored against: its id and the exact numbers of its scene. The broker, which holds
the target, is the positive control that shows the search finds what is there.
"""

from __future__ import annotations

import os

import pytest
from derender import Client
from derender.farm.local import LocalFarm
from derender.scenes import Scene, SceneObject

# Numbers no script below contains, so finding them means the target reached the process.
SECRET = Scene(
    (
        SceneObject("cube", "large", "metal", "purple", 1.2345678901234567, -2.718281828459045),
        SceneObject("sphere", "small", "rubber", "cyan", -1.4142135623730951, 0.5772156649015329),
    )
)
SCRIPTS = [
    "add_object('cube', 'large', 'metal', 'red', 0.0, 0.0)\n",
    "import bpy\nbpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(1, 1, 0.5))\n",
    "for i in range(3):\n    add_object('cylinder', 'small', 'rubber', 'blue', i - 1.0, 2.0)\n",
    "print('no target here')\n",
    "syntax error (\n",
]


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_the_step_worker_never_holds_the_target(memory_contains):
    with (
        LocalFarm(workers=1, engine="workbench", size=32, metrics_interval=0) as farm,
        Client(farm.address, timeout=120) as client,
    ):
        target = client.reset(scene=SECRET)
        results = client.step_many(SCRIPTS * 4, target)
        assert [r.outcome for r in results][:5] == [
            "ok", "ok", "ok", "ok", "syntax_error",
        ]  # fmt: skip
        needles = [target.target_id.encode()] + [
            repr(v).encode() for o in SECRET.objects for v in (o.x, o.y)
        ]
        workers = farm.status()["workers"]
        step = next(w for w in workers if w["role"] == "step")
        assert memory_contains(step["pid"], needles) == set()
        # the control: the broker holds the target, and the search finds it there
        assert target.target_id.encode() in memory_contains(farm.pid, needles)
        # the script the worker ran is there (the search reads the right process)
        assert memory_contains(step["pid"], [b"no target here"]) == {b"no target here"}
