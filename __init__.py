"""derender: Blender as an inverse-graphics RL environment.

Importing the package never imports bpy, torch or zmq: those load lazily where used,
so the same code runs inside Blender, in a farm supervisor and in a trainer.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Client", "__version__", "register", "unregister"]


def __getattr__(name: str):
    # Lazy so that `import derender` stays free of zmq.
    if name == "Client":
        from .protocol.client import Client

        return Client
    raise AttributeError(f"module 'derender' has no attribute {name!r}")


def register() -> None:
    """Blender extension entry point; bpy-dependent modules load only now."""
    from .addon import registration

    registration.register()


def unregister() -> None:
    """Stop the GUI server and remove every class, property, timer and handler added."""
    from .addon import registration

    registration.unregister()
