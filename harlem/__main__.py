"""``python -m harlem``: the same as the ``harlem`` command."""

import sys

from harlem.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
