"""`python -m nlviz.cli ...`: the same as the `nlviz` command."""

import sys

from nlviz.cli import main

sys.exit(main())
