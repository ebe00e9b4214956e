import sys

from omnitask.cli import main

sys.exit(main())
