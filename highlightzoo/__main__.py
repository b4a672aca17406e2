"""``python -m highlightzoo`` is the same as the ``highlightzoo`` command."""

import sys

from highlightzoo.cli import main

sys.exit(main())
