import sys

from gradstep.cli.main import main

sys.exit(main())
