"""``python -m kofn``: the ``kofn`` command line."""

import sys

from worker.cli import main

sys.exit(main())
