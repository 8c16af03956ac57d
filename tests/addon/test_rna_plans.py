"""rna_walk's per-type plans follow registered properties where a reference snapshot meets
their type, and are kept otherwise (every new shared mesh takes a reference snapshot:
making all plans again cost ~8 ms a step for a script that makes new primitive sizes)."""

from __future__ import annotations

import bpy
import pytest
from derender.addon import assets, rna_walk
from derender.addon.rna_snapshot import snapshot


@pytest.fixture
def material(wb_frame):
    mat = assets.material("metal", "red").copy()
    yield mat
    bpy.data.materials.remove(mat)


def _values(idb: bpy.types.ID) -> tuple:
    """The walk's first value: the datablock's own plain properties, read in one call."""
    return snapshot(idb, paths=False).values[0]


def test_a_property_registered_later_is_read_from_the_next_reference_snapshot_on(
    material,
) -> None:
    before = len(_values(material))
    bpy.types.Material.derender_test_value = bpy.props.FloatProperty(default=0.5)
    try:
        assert len(_values(material)) == before  # a check reads what its reference read
        reference = snapshot(material)
        assert len(reference.values[0]) == len(_values(material)) == before + 1
        material.derender_test_value = 0.25
        assert 0.25 in _values(material) and _values(material) != reference.values[0]
    finally:
        del bpy.types.Material.derender_test_value
    assert len(snapshot(material).values[0]) == len(_values(material)) == before


def test_a_reference_snapshot_keeps_the_plans_of_unchanged_types(material) -> None:
    _values(material)
    kept = dict(rna_walk._plans)
    assert type(material) in kept and len(kept) > 10
    snapshot(assets.shape_mesh("sphere"))  # a new shared mesh takes one
    assert all(rna_walk._plans.get(cls) is plan for cls, plan in kept.items())
