import sys

from entmoot_ops.cli import main

sys.exit(main())
