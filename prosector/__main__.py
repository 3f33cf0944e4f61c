import sys

from prosector.cli import main

sys.exit(main())
