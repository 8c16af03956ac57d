"""Validity from the outcome string and RLRF's code-length reward."""

from __future__ import annotations

import pytest
from derender.reward.program import code_length, code_length_reward, validity
from derender.scenes.generator import generate_scene
from derender.scenes.programs import dsl_program


def test_validity_levels() -> None:
    assert validity("ok", rendered=True) == 1.0
    assert validity("runtime_error", rendered=True) == 0.5
    assert validity("runtime_error", rendered=False) == 0.0
    assert validity("syntax_error", rendered=False) == 0.0
    assert validity("frame_tampered", rendered=True) == 0.0  # hacking never pays
    assert validity("sandbox_violation", rendered=True) == 0.0
    assert validity("timeout", rendered=True) == 0.5
    assert validity("poisoned", rendered=False) == 0.0
    with pytest.raises(ValueError, match="'exploded'"):
        validity("exploded", rendered=True)


def test_code_length_ignores_blank_lines_and_trailing_space() -> None:
    assert code_length("a = 1\n\n   \nb = 2   \n") == 10


def test_code_length_reward_follows_the_rlrf_formula() -> None:
    ref = dsl_program(generate_scene(seed=1, index=0))
    n = code_length(ref)
    assert code_length_reward(ref, ref) == 1.0
    assert code_length_reward("add_object()", ref) == 1.0  # shorter is never penalised
    longer = ref + "x" * (n // 2)
    assert code_length_reward(longer, ref) == pytest.approx(1 - ((n // 2) / n) ** 2)
    assert code_length_reward(ref + "x" * (2 * n), ref) == 0.0
    with pytest.raises(ValueError, match="reference"):
        code_length_reward("x", "\n\n")
