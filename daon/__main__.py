"""``python -m daon`` is ``daon``."""

import sys

from daon.cli import main

sys.exit(main())
