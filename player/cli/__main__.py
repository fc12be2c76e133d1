"""`python -m player.cli` runs the `abrlab` command line."""
import sys

from player.cli.main import main

sys.exit(main())
