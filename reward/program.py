"""Program-level reward terms: execution validity and code length.

Validity is read from the step's outcome string (one of ``protocol.errors.OUTCOMES``):

* ``"ok"`` -> 1.0: the script ran to the end and the scene rendered.
* ``"frame_tampered"``, ``"sandbox_violation"`` -> 0.0 always, even with a render: these
  are reward-hacking attempts and must never pay.
* any other outcome with a render -> 0.5: the script failed part-way (runtime_error,
  timeout, resource_limit) but what it built rendered, so the image terms mean something.
* any other outcome without a render -> 0.0 (syntax_error, render_error, poisoned ...).

Code length follows RLRF (Rodriguez et al. 2025, "Rendering-Aware Reinforcement Learning
for Vector Graphics Generation"), whose code-efficiency reward penalises programs longer
than the ground truth quadratically in the relative excess:

    R_len = 1 - (max(0, L_pred - L_gt) / L_gt) ** 2, clipped to [0, 1]

so anything up to the ground truth's length scores 1 and twice its length scores 0.
Lengths are counted in characters of the non-blank lines with trailing whitespace removed
(token counts would tie the reward to one tokenizer).
"""

from __future__ import annotations

from ..protocol.errors import OUTCOMES

VALID_OUTCOME = "ok"
HACKING_OUTCOMES: frozenset[str] = frozenset({"frame_tampered", "sandbox_violation"})
PARTIAL_VALIDITY = 0.5


def validity(outcome: str, rendered: bool) -> float:
    """The validity term in {0, 0.5, 1} (see the module docstring)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; known: {OUTCOMES}")
    if outcome == VALID_OUTCOME:
        return 1.0
    if outcome in HACKING_OUTCOMES or not rendered:
        return 0.0
    return PARTIAL_VALIDITY


def code_length(code: str) -> int:
    """Characters of the non-blank lines, trailing whitespace stripped."""
    return sum(len(line.rstrip()) for line in code.splitlines() if line.strip())


def code_length_reward(code: str, reference_code: str) -> float:
    """RLRF's length reward in [0, 1]: 1 up to the reference length, 0 at twice it."""
    ref = code_length(reference_code)
    if ref == 0:
        raise ValueError("reference_code is empty: the length reward needs a reference")
    excess = max(0, code_length(code) - ref) / ref
    return max(0.0, 1.0 - excess * excess)
