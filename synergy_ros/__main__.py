"""`python -m synergy_ros` behaves exactly like the `synergy` command."""
import sys

from synergy_ros.cli import main

if __name__ == "__main__":
    sys.exit(main())
