"""``python -m agents.mbtl {build,replay,run,online} CONFIG.yaml``."""
import sys

from agents.mbtl.cli import main

sys.exit(main())
