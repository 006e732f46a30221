"""``python -m mept.cli``: the ``mept`` command."""

import sys

from mept.cli import main

sys.exit(main())
