"""``python -m cathtrack.cli`` runs the ``cathtrack`` command."""

import sys

from cathtrack.cli import main

sys.exit(main())
