"""``python -m fuzz`` (with ``tests/`` on the path): see :mod:`.run`."""

import sys

from .run import main

sys.exit(main())
