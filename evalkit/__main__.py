"""``python -m evalkit``: the same as the ``evalkit`` command."""
import sys

from .cli import main

sys.exit(main())
