"""The compile-time policy and the budget, without Blender objects."""

from __future__ import annotations

import ast
import time

import pytest
from derender.addon.sandbox.errors import ResourceLimit, Timeout
from derender.addon.sandbox.limits import Budget, Limits
from derender.addon.sandbox.policy import CompileFailure, compile_script


def _transformed(source: str) -> str:
    from derender.addon.sandbox.rewrite import Rewriter

    return ast.unparse(Rewriter().module(ast.parse(source)))


def test_augmented_attribute_evaluates_container_once() -> None:
    out = _transformed("f().loc.z += 1")
    assert out.count("f()") == 1
    assert "_write_(aug·0).z = _add_(_getattr_(aug·0, 'z'), 1)" in out


def test_augmented_subscript_evaluates_key_once() -> None:
    out = _transformed("v[k()] *= 2")
    assert out.count("k()") == 1
    assert "_mul_(_getitem_(aug·0, aug·1), 2)" in out


def test_every_loop_function_and_handler_ticks() -> None:
    out = _transformed(
        "def f():\n    pass\nwhile x:\n    pass\nfor i in y:\n    pass\n"
        "try:\n    pass\nexcept:\n    pass\nfinally:\n    pass\ng = lambda: 1\n"
    )
    assert out.count("_tick_()") == 6
    assert "except _exc_(Exception):" in out


def test_arithmetic_goes_through_checked_helpers() -> None:
    out = _transformed("a = b ** c * d << e")
    assert "_lshift_(_mul_(_pow_(b, c), d), e)" in out


@pytest.mark.parametrize(
    ("source", "outcome", "line"),
    [
        ("x = 1\ny = (", "syntax_error", 2),
        ("x = 1\n\nx.__class__", "sandbox_violation", 3),
        ("try:\n    pass\nexcept* E:\n    pass", "sandbox_violation", 1),
        ("async def f():\n    pass", "sandbox_violation", 1),
        ("def f(a, /, _getitem_=1):\n    pass", "sandbox_violation", 1),
    ],
)
def test_compile_failures_are_typed_with_lines(source: str, outcome: str, line: int) -> None:
    with pytest.raises(CompileFailure) as info:
        compile_script(source, 10_000)
    assert (info.value.outcome, info.value.line) == (outcome, line)


def test_script_size_limit() -> None:
    with pytest.raises(ValueError, match="limit 10"):
        compile_script("x = 1  # long", 10)


def test_budget_deadline_is_sticky() -> None:
    budget = Budget(Limits(deadline_s=0.01))
    time.sleep(0.02)
    with pytest.raises(Timeout):
        budget.tick()
    for _ in range(3):  # every later tick re-raises the same abort
        with pytest.raises(Timeout):
            budget.tick()


def test_budget_tick_limit() -> None:
    budget = Budget(Limits(max_ticks=5))
    for _ in range(5):
        budget.tick()
    with pytest.raises(Timeout, match="5 steps"):
        budget.tick()


def test_checked_arithmetic() -> None:
    budget = Budget(Limits(max_int_bits=1000, max_sequence=100))
    assert budget.pow(2, 10) == 1024 and budget.pow(2.0, 0.5) == pytest.approx(2**0.5)
    assert budget.pow(10, 10**9, 7) == pow(10, 10**9, 7)  # modular pow is bounded
    assert budget.mul("ab", 3) == "ababab" and budget.mul(3, [1]) == [1, 1, 1]
    assert budget.inplace("+=", 1, 2) == 3 and budget.lshift(1, 10) == 1024
    for call in (
        lambda: budget.pow(10, 10**8),
        lambda: budget.mul("x", 101),
        lambda: budget.mul(2**600, 2**600),
        lambda: budget.lshift(1, 2000),
        lambda: budget.range(101),
        lambda: budget.inplace("**=", 3, 10**6),
    ):
        with pytest.raises(ResourceLimit):
            call()
