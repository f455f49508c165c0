"""``python -m robocell`` runs the command line, as ``robocell`` does."""

import sys

from robocell.cli import main

sys.exit(main())
