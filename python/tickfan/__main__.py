"""``python -m tickfan`` is the ``tickfan`` command."""

import sys

from tickfan.cli import main

sys.exit(main())
