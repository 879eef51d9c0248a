"""Run the command line with ``python -m approvals``."""

from approvals.main.cli import app

app()
