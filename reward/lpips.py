"""LPIPS v0.1 (Zhang et al. 2018) with derender's own AlexNet trunk, in torch.

``lpips.LPIPS(net="alex")`` needs torchvision, which cannot be imported next to the CPU torch
used here, so this module rebuilds the same network: torchvision's AlexNet ``features``
layers (identical module indices, so torchvision's checkpoint loads unchanged), lpips'
scaling layer, unit-normalised relu1..relu5 features, the v0.1 linear heads read from the
installed ``lpips`` package's ``weights/v0.1/alex.pth`` (found without importing lpips),
and a spatial mean. The trunk comes from torch hub's cache under torchvision's published
name, so an online machine downloads it once and an offline node can be seeded by copying
the file to ``$TORCH_HOME/hub/checkpoints/``. Missing weights raise ``LPIPSUnavailable``; a
random trunk is only ever built when asked for by name (``"random:<seed>"``: tests and
benchmarks), never as a fallback.

This module imports torch; the rest of ``reward`` imports it only when LPIPS is used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_FILE = ALEXNET_URL.rsplit("/", 1)[1]
CHANNELS = (64, 192, 384, 256, 256)
# lpips.ScalingLayer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# After these indices of torchvision's ``alexnet().features`` lpips taps relu1..relu5.
TAPS = (1, 4, 7, 9, 11)
MIN_SIDE = 31  # smaller inputs leave nothing for the second max-pool

log = logging.getLogger(__name__)


class LPIPSUnavailable(RuntimeError):
    """The LPIPS weights are not on this machine; the message says what to provide where."""


def lin_weights_path() -> Path:
    """``weights/v0.1/alex.pth`` of the installed lpips package (lpips is not imported)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise LPIPSUnavailable(
            "the lpips package is not installed: its weights/v0.1/alex.pth linear weights "
            "are needed (pip install lpips==0.1.4)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "alex.pth"
    if not path.is_file():
        raise LPIPSUnavailable(f"lpips linear weights missing: {path}")
    return path


def trunk_path() -> Path:
    """Where torch hub keeps torchvision's AlexNet checkpoint on this machine."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 prefix (12 hex) of a weight file, cached on (path, size, mtime)."""
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)[:12]


def alexnet_features() -> nn.Sequential:
    """torchvision's ``AlexNet.features``, layer for layer (so state-dict keys match)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class AlexLPIPS(nn.Module):
    """LPIPS-Alex v0.1: ``forward(x0, x1)`` on N×3×H×W tensors in [-1, 1] -> N distances."""

    def __init__(self, identity: str) -> None:
        super().__init__()
        self.identity = identity
        self.features = alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised relu1..relu5 features of images in [-1, 1]."""
        h = (x - self.shift) / self.scale
        out = []
        # Iterated, not sliced: a slice of a Sequential builds a new module every call.
        for i, layer in zip(range(TAPS[-1] + 1), self.features, strict=False):
            h = layer(h)
            if i in TAPS:
                # lpips.normalize_tensor: divide by the channel norm (+1e-10).
                out.append(h / (torch.sqrt(torch.sum(h * h, dim=1, keepdim=True)) + 1e-10))
        return out

    def forward(
        self, x0: torch.Tensor, x1: torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Distances between x0[i] and x1[index[i]] (index defaults to 0..N-1).

        ``index`` lets N renders share few targets (an RL group scores many candidates
        against one target) with the trunk run once per distinct target.
        """
        n = x0.shape[0]
        if index is None:
            index = torch.arange(n, device=x0.device)
        # One trunk pass over both stacks: a single batched conv is faster than two.
        feats = self.taps(torch.cat([x0, x1]))
        total = torch.zeros(n, dtype=x0.dtype, device=x0.device)
        for lin, f in zip(self.lins, feats, strict=True):
            total = total + lin((f[:n] - f[n:][index]) ** 2).mean(dim=(1, 2, 3))
        return total


def _load_lins(model: AlexLPIPS) -> str:
    path = lin_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    for k, lin in enumerate(model.lins):
        lin.weight.copy_(state[f"lin{k}.model.1.weight"])
    return file_digest(path)


def _load_trunk(model: AlexLPIPS) -> str:
    path = trunk_path()
    try:
        # Reads the cache when the file is there; downloads it (once) when online.
        state = torch.hub.load_state_dict_from_url(
            ALEXNET_URL, map_location="cpu", progress=False, weights_only=True
        )
    except Exception as exc:  # offline, HTTP errors, a truncated file: all "not available"
        raise LPIPSUnavailable(
            f"AlexNet trunk weights {ALEXNET_FILE} could not be loaded or downloaded "
            f"({type(exc).__name__}: {exc}); provide the file at {path} (torchvision's "
            f"published checkpoint {ALEXNET_URL}) or set TORCH_HOME to a directory whose "
            f"hub/checkpoints/ holds it"
        ) from exc
    feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    model.features.load_state_dict(feats)
    return file_digest(path)


def build(trunk: str = "torchvision", device: str | None = None) -> AlexLPIPS:
    """A ready LPIPS model. ``trunk``: "torchvision" (real weights) or "random:<seed>"."""
    if trunk == "torchvision":
        model = AlexLPIPS("")
        trunk_id = f"alexnet-owt:{_load_trunk(model)}"
    elif trunk.startswith("random:") and trunk[len("random:") :].isdigit():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(trunk[len("random:") :]))
            model = AlexLPIPS("")
        trunk_id = f"RANDOM-TRUNK-seed{trunk[len('random:') :]}"
    else:
        raise ValueError(f"trunk must be 'torchvision' or 'random:<seed>', got {trunk!r}")
    model.identity = f"lpips-alex-v0.1:lin={_load_lins(model)}:trunk={trunk_id}"
    return model.to(default_device() if device is None else device)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=4)
def cached(trunk: str = "torchvision", device: str | None = None) -> AlexLPIPS | None:
    """The shared model, or None after logging ONCE (per trunk, device) why it is missing."""
    try:
        return build(trunk, device)
    except LPIPSUnavailable as exc:
        log.warning("LPIPS unavailable, scoring without it: %s", exc)
        return None


def distance(
    model: AlexLPIPS, a: np.ndarray, b: np.ndarray, index: np.ndarray | None = None
) -> np.ndarray:
    """LPIPS distances between (N, H, W, 3) float stacks in 0..1: a[i] vs b[index[i]]."""
    if a.ndim != 4 or b.ndim != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"need two (N, H, W, 3) stacks of one size, got {a.shape}, {b.shape}")
    if min(a.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"LPIPS-Alex needs images of at least {MIN_SIDE} px, got {a.shape[1:3]}")
    if index is None and len(a) != len(b):
        raise ValueError(f"{len(a)} renders for {len(b)} targets need an index")
    device = model.shift.device

    def tensor(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)
        return (t.to(device) * 2.0 - 1.0).contiguous()

    idx = None if index is None else torch.as_tensor(np.asarray(index), device=device)
    with torch.inference_mode():
        return model(tensor(a), tensor(b), idx).double().cpu().numpy()
