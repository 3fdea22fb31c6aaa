"""`python -m svge_cli` runs the `svge` command (useful where the console script is not on PATH)."""
from .cli import main

main()
