"""``python -m fglab``."""

from __future__ import annotations

import sys

from fglab.cli import main

sys.exit(main())
