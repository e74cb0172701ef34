import sys

from asr_kd_runtime.cli import main

sys.exit(main())
