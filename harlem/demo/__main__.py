"""``python -m harlem.demo``: run the demo traffic (record it with ``harlem-run``)."""

import sys

from harlem.demo.app import main

sys.exit(main())
