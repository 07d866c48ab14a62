"""`python -m contacthub` is the `contacthub` command."""

from contacthub.cli.main import app

app()
