"""`python -m benchmarks`: every benchmark in one run, written to benchmarks/RESULTS.md."""
import sys

from benchmarks.run_all import main

sys.exit(main())
