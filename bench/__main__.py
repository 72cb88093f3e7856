"""`python -m bench` = `offload-bench`."""

from bench.cli import main

main()
