"""`python -m quiltc.cli`: the `quiltc` command."""

import sys

from . import main

sys.exit(main())
