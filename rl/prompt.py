"""Chat prompts for a derender episode, and the script inside a model's answer.

``build_messages`` turns the server's ``info`` (frame, universe, cheat sheet) plus the
target image (and, when refining, the agent's earlier turns) into a chat message list in
the OpenAI format (images as base64 PNG data URLs), the Hugging Face processor format
(``{"type": "image", "image": PIL.Image}``), or with ``{"type": "image"}`` placeholders whose
images travel in a dataset column (what TRL's GRPOTrainer and the dataset builders of
``integrations.dataset`` use). ``text_messages`` is the prompt for a text-only model: the
target image described in words (:func:`target_text`). ``extract_script`` is the inverse
contract: the prompt asks for one fenced python block, and trainers' adapters pull the
script out of a completion with it.

Every function that depends on the environment takes ``env``: ``"clevr"`` (a program, the
frame, the bpy/DSL cheat sheet) or ``"svg"`` (an SVG document, the canvas, the cheat sheet
``info.cheatsheets["svg"]``, a fenced ``svg`` block).
"""

from __future__ import annotations

import base64
import io
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..protocol.results import ServerInfo
from ..scenes import FrameSpec, Scene
from ..svg.canvas import SvgCanvas

Style = Literal["openai", "hf", "placeholder"]
STYLES: tuple[str, ...] = ("openai", "hf", "placeholder")
Env = Literal["clevr", "svg"]
ENVS: tuple[str, ...] = ("clevr", "svg")
TASK_TEXT = "Target image. Write the program that rebuilds this scene."
SVG_TASK_TEXT = "Target image. Write the SVG document that draws this picture."
FENCES: dict[str, str] = {"clevr": "python", "svg": "svg"}

# Printable ASCII plus newline and tab: enough for any Python source an agent writes, and
# for the frame text of the observation (Gymnasium's Text space checks every character).
CHARSET: str = string.ascii_letters + string.digits + string.punctuation + " \n\t"

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_SVG_FENCE = re.compile(r"```[ \t]*(?:svg|xml|html)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_SVG_ELEMENT = re.compile(r"<svg\b.*?</svg\s*>", re.DOTALL | re.IGNORECASE)


class EnvNotServed(ValueError):
    """The server does not serve the environment kind asked for; names what it serves."""


@dataclass(frozen=True)
class Turn:
    """One earlier attempt in a refinement episode, as the agent gets to see it."""

    script: str
    reward: float
    outcome: str
    message: str = ""
    render: np.ndarray | None = None  # uint8 H x W x 3, None if nothing rendered
    heatmap: np.ndarray | None = None  # uint8 H x W x 3 from reward.heatmap: where it is wrong


def frame_text(frame: FrameSpec) -> str:
    """The locked frame in a few lines of plain ASCII (part of the env's observation)."""
    cam = frame.camera
    loc = ", ".join(f"{v:.3f}" for v in cam.location)
    look = ", ".join(f"{v:.3f}" for v in cam.target)
    dirs = frame.directions()
    lines = [
        f"Image {frame.width}x{frame.height} px, engine {frame.engine}.",
        f"Camera at ({loc}) looking at ({look}), lens {cam.lens} mm, "
        f"sensor {cam.sensor_width} mm; world z is up, the ground is z = 0.",
        "Directions on the ground as seen from the camera: "
        + "; ".join(
            f"{name} = ({dirs[name][0]:.3f}, {dirs[name][1]:.3f})"
            for name in ("left", "right", "front", "behind")
        )
        + ".",
        f"Lights: {', '.join(lt.name for lt in frame.lights)} (fixed).",
    ]
    return "\n".join(lines)


def canvas_text(canvas: SvgCanvas) -> str:
    """The SVG environment's locked canvas in plain ASCII (its observation's ``frame``)."""
    r, g, b = canvas.background
    return (
        f"Canvas {canvas.width}x{canvas.height} px, background rgb({r}, {g}, {b}); "
        "the document is always drawn at this size, whatever its own width and height say."
    )


def info_canvas(info: ServerInfo) -> SvgCanvas:
    """The SVG canvas a server reports; :class:`EnvNotServed` if it serves no SVG."""
    if "svg" not in info.envs or info.canvas is None:
        raise EnvNotServed(f"this server serves {info.envs}, not env 'svg'")
    return SvgCanvas.from_dict(info.canvas)


def system_text(info: ServerInfo, env: Env = "clevr") -> str:
    """The task, the frame and the cheat sheet of ``env``: everything but the images."""
    _check_env(env)
    if env == "svg":
        sheet, frame, whole = (
            info.cheatsheets.get("svg", ""),
            canvas_text(info_canvas(info)),
            "document",
        )
    else:
        sheet, frame, whole = info.cheatsheet, frame_text(info.frame), "program"
    return (
        f"{sheet.rstrip()}\n\n## The frame\n{frame}\n\n"
        "## Answer format\nReply with exactly one fenced code block that starts with "
        f"```{FENCES[env]} and contains the whole {whole}.\n"
    )


def _check_env(env: str) -> None:
    if env not in ENVS:
        raise ValueError(f"env must be one of {ENVS}, got {env!r}")


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image (H x W x 3 RGB, or H x W grey) as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def _image_part(image: np.ndarray, style: Style) -> dict[str, Any]:
    if style == "placeholder":
        return {"type": "image"}
    if style == "openai":
        url = "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
        return {"type": "image_url", "image_url": {"url": url}}
    from PIL import Image

    return {"type": "image", "image": Image.fromarray(np.ascontiguousarray(image))}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _feedback(turn: Turn, index: int, style: Style, env: Env) -> list[dict[str, Any]]:
    detail = f" ({turn.message})" if turn.message else ""
    parts = [
        _text_part(
            f"Attempt {index + 1}: outcome {turn.outcome}{detail}, reward {turn.reward:.4f}."
        )
    ]
    if turn.render is not None:
        parts += [_text_part("Your render:"), _image_part(turn.render, style)]
    if turn.heatmap is not None:
        parts += [
            _text_part("Error heatmap (bright = wrong):"),
            _image_part(turn.heatmap, style),
        ]
    whole = "document" if env == "svg" else "program"
    parts.append(_text_part(f"Revise the {whole}. Reply with the whole {whole} again."))
    return parts


def build_messages(
    info: ServerInfo,
    target: np.ndarray,
    turns: Sequence[Turn] = (),
    style: Style = "openai",
    env: Env = "clevr",
) -> list[dict[str, Any]]:
    """System + user (target image) messages, then one assistant/user pair per turn."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    task = SVG_TASK_TEXT if env == "svg" else TASK_TEXT
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [_text_part(system_text(info, env))]},
        {"role": "user", "content": [_text_part(task), _image_part(target, style)]},
    ]
    for i, turn in enumerate(turns):
        answer = f"```{FENCES[env]}\n{turn.script}\n```"
        messages.append({"role": "assistant", "content": [_text_part(answer)]})
        messages.append({"role": "user", "content": _feedback(turn, i, style, env)})
    return messages


def target_text(scene: Scene, frame: FrameSpec) -> str:
    """The target image in words, for a text-only model: each object's size, colour,
    material and shape and where its centre appears (pixels from the image's top-left, and
    its distance from the camera), nearest first. Turning that back into ground positions
    through the frame's camera is the model's task, as reading the picture is a VLM's."""
    placed = sorted(
        ((frame.pixel_coords(o.position), o) for o in scene.objects), key=lambda p: p[0][2]
    )
    lines = [
        f"The target image ({frame.width}x{frame.height} px) shows {len(scene)} objects, "
        "nearest to the camera first:"
    ]
    for (px, py, depth), o in placed:
        lines.append(
            f"- a {o.size} {o.color} {o.material} {o.shape}, centre at pixel ({px}, {py}), "
            f"{depth:.2f} m from the camera"
        )
    return "\n".join(lines)


def text_messages(info: ServerInfo, scene: Scene) -> list[dict[str, Any]]:
    """System + user messages (plain strings) for a text-only model: the frame and the
    target in words, no image."""
    return [
        {"role": "system", "content": system_text(info)},
        {
            "role": "user",
            "content": f"{target_text(scene, info.frame)}\n\n"
            "Write the program that rebuilds this scene.",
        },
    ]


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    return "\n".join(
        p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
    )


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """A completion as text; a chat completion (list of messages) gives its last message."""
    if isinstance(completion, str):
        return completion
    if not completion:
        return ""
    assistant = [m for m in completion if m.get("role", "assistant") == "assistant"]
    return _message_text((assistant or list(completion))[-1])


def extract_script(completion: str | Sequence[Mapping[str, Any]], env: Env = "clevr") -> str:
    """The program in a completion: its last fenced python block, else the raw text.

    The last block wins because reasoning models often sketch before the final answer; an
    unterminated block (a completion cut at max tokens) still yields what was written.
    ``env="svg"``: the last fenced ``svg``/``xml`` block, else the last ``<svg>…</svg>``
    element in the text, else the raw text (which the server then refuses, typed).
    """
    _check_env(env)
    text = completion_text(completion)
    blocks = (_SVG_FENCE if env == "svg" else _FENCE).findall(text)
    if blocks:
        return blocks[-1].strip("\n") + "\n"
    if env == "svg":
        elements = _SVG_ELEMENT.findall(text)
        if elements:
            return elements[-1]
    return text
