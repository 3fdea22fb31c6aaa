"""`python -m svge_cli` runs the `svge` command (useful where the console script is not on PATH)."""

from svge_cli.cli import main

if __name__ == "__main__":  # not when a spawned training process imports this module
    main()
