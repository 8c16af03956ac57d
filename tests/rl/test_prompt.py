"""The prompt builder (both chat formats) and script extraction from completions."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from derender.protocol.results import ServerInfo
from derender.rl.prompt import CHARSET, Turn, build_messages, extract_script, frame_text
from derender.scenes import FrameSpec, universe
from derender.scenes.cheatsheet import cheatsheet
from PIL import Image


@pytest.fixture
def info() -> ServerInfo:
    frame = FrameSpec(width=48, height=32, engine="workbench")
    return ServerInfo(
        {"name": "derender"},
        {"versions": [1]},
        frame,
        frame.hash(),
        "workbench",
        universe.describe(),
        ("seed",),
        "seed",
        {},
        cheatsheet(),
    )


def _image(seed: int, h: int = 32, w: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_openai_messages_carry_the_target_as_a_lossless_png_data_url(info):
    target = _image(0)
    msgs = build_messages(info, target, style="openai")
    assert [m["role"] for m in msgs] == ["system", "user"]
    system = msgs[0]["content"][0]["text"]
    assert "add_object(" in system and "Camera at (7.481, -6.508, 5.344)" in system
    part = msgs[1]["content"][1]
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(decoded, target)


def test_hf_messages_carry_pil_images_and_refinement_turns(info):
    target, render, heat = _image(1), _image(2), _image(3)
    turn = Turn("add_object(shape='cube')", 0.25, "runtime_error", "NameError", render, heat)
    msgs = build_messages(info, target, [turn], style="hf")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    images = [p["image"] for m in msgs for p in m["content"] if p["type"] == "image"]
    assert [
        np.array_equal(np.asarray(i), a)
        for i, a in zip(images, (target, render, heat), strict=True)
    ] == [True] * 3
    assert "```python\nadd_object(shape='cube')\n```" in msgs[2]["content"][0]["text"]
    feedback = msgs[3]["content"][0]["text"]
    assert "runtime_error (NameError)" in feedback and "0.2500" in feedback


def test_unknown_style_is_rejected(info):
    with pytest.raises(ValueError, match="'png'"):
        build_messages(info, _image(0), style="png")  # type: ignore[arg-type]


def test_frame_text_stays_inside_the_observation_charset(info):
    text = frame_text(info.frame)
    assert set(text) <= set(CHARSET)
    assert "48x32 px, engine workbench" in text


@pytest.mark.parametrize(
    ("completion", "script"),
    [
        ("add_object(shape='cube')", "add_object(shape='cube')"),
        ("Sure:\n```python\nx = 1\n```\nDone.", "x = 1\n"),
        ("draft\n```py\nx = 1\n```\nfinal\n```python\nx = 2\ny = 3\n```", "x = 2\ny = 3\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("cut off\n```python\nx = 1\ny =", "x = 1\ny =\n"),
        ([{"role": "assistant", "content": "```python\nz = 0\n```"}], "z = 0\n"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "text", "text": "```python\nw\n```"}]},
            ],
            "w\n",
        ),
    ],
)
def test_extract_script(completion, script):
    assert extract_script(completion) == script


def test_prompt_answer_format_line_is_not_mistaken_for_a_script(info):
    system = build_messages(info, _image(0))[0]["content"][0]["text"]
    assert "```python" in system
    assert extract_script(system + "\nanswer: x = 1") == system + "\nanswer: x = 1"


SVG_DOC = '<svg xmlns="http://www.w3.org/2000/svg"><circle r="3"/></svg>'


@pytest.mark.parametrize(
    ("completion", "document"),
    [
        (f"Here:\n```svg\n{SVG_DOC}\n```", SVG_DOC + "\n"),
        (f"```xml\n<svg/>\n```\nbetter:\n```svg\n{SVG_DOC}\n```", SVG_DOC + "\n"),
        (f"no fence, just {SVG_DOC} and a remark", SVG_DOC),
        (f"first <svg></svg> then {SVG_DOC}", SVG_DOC),
        ([{"role": "assistant", "content": f"```\n{SVG_DOC}\n```"}], SVG_DOC + "\n"),
        ("cut off\n```svg\n<svg><rect", "<svg><rect\n"),
        ("```python\nx = 1\n```", "```python\nx = 1\n```"),  # not SVG: sent as is, refused
    ],
)
def test_extract_svg_document(completion, document):
    assert extract_script(completion, env="svg") == document


def test_svg_messages_use_the_canvas_and_the_svg_cheat_sheet(info):
    from dataclasses import replace

    from derender.rl.prompt import EnvNotServed
    from derender.svg.canvas import SvgCanvas
    from derender.svg.cheatsheet import svg_cheatsheet

    canvas = SvgCanvas(64, 64)
    served = replace(
        info,
        envs=("clevr", "svg"),
        cheatsheets={"clevr": info.cheatsheet, "svg": svg_cheatsheet(canvas)},
        canvas=canvas.to_dict(),
    )
    turn = Turn(SVG_DOC, 0.4, "ok", render=_image(1, 64, 64))
    msgs = build_messages(served, _image(0, 64, 64), [turn], style="placeholder", env="svg")
    system = msgs[0]["content"][0]["text"]
    assert system.startswith(svg_cheatsheet(canvas).rstrip()) and "Canvas 64x64 px" in system
    assert "```svg" in system and "bpy" not in system
    assert "SVG document" in msgs[1]["content"][0]["text"]
    assert msgs[2]["content"][0]["text"] == f"```svg\n{SVG_DOC}\n```"
    assert "Revise the document" in msgs[3]["content"][-1]["text"]
    assert extract_script(msgs[2]["content"][0]["text"], env="svg") == SVG_DOC + "\n"
    with pytest.raises(EnvNotServed, match="svg"):
        build_messages(info, _image(0), env="svg")  # this server serves clevr only
    with pytest.raises(ValueError, match="env"):
        extract_script("x", env="vector")  # type: ignore[arg-type]
