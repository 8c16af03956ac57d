"""``python -m derender.cli``: the ``derender`` command without the console script."""

import sys

from . import main

sys.exit(main())
