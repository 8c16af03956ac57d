"""Farm benchmark: farm steps/s vs a bare bpy loop × workers and vs a process per episode.

The same as ``derender bench farm`` (implemented in :mod:`derender.farm.bench`):

    .venv/bin/python bench/farm.py [--engines workbench cycles] [--size 64] [--workers 2]
                                   [--steps 200] [--episodes 3] [--repeat 2] [--json out.json]
"""

from __future__ import annotations

import sys

from derender.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "farm", *sys.argv[1:]]))
