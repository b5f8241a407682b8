"""`python -m segpipe`: the same as the `segpipe` command."""

from segpipe.cli import command

command()
