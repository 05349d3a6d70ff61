"""``python -m simulator``: the same command as ``imsrep simulator``, with the same help."""

import typer

from cli.helpflags import show_flags_bare
from simulator.cli import simulator_command

if __name__ == "__main__":
    show_flags_bare()  # as imsrep's: no `<bool>` after a flag
    typer.run(simulator_command)
