"""`python -m cadenza` runs the `cadenza` command line."""

from cadenza.ops.cli import main

main()
