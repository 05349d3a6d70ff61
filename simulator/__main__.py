"""``python -m simulator``: the same command as ``imsrep simulator``."""

import typer

from simulator.cli import simulator_command

if __name__ == "__main__":
    typer.run(simulator_command)
