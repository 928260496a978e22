import sys

from sim_fallback.pluto.serve import main

sys.exit(main())
