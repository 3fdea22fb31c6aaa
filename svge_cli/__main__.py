"""`python -m svge_cli` runs the `svge` command (useful where the console script is not on PATH)."""

from svge_cli.cli import main

main()
