"""Thin adapters that plug derender rewards into RL trainers (verl, EasyR1, TRL, OpenRLHF).

All of them call :mod:`.core`; point them at a farm with :func:`configure` or the
``DERENDER_ADDRESS`` environment variable. Trainer packages are never imported here.
"""

from .core import (
    ConfigurationError,
    RewardClient,
    RewardRequestError,
    Scored,
    configure,
    ground_truth_json,
    parse_ground_truth,
)

__all__ = [
    "ConfigurationError",
    "RewardClient",
    "RewardRequestError",
    "Scored",
    "configure",
    "ground_truth_json",
    "parse_ground_truth",
]
