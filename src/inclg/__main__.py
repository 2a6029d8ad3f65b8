"""`python -m inclg ...`: the `inclg` command, for environments without the console script."""

from inclg.cli import app

app()
