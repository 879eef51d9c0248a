"""Run the command line with ``python -m approvals``."""

from approvals.cli import app

app()
