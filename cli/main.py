"""The ``imsrep`` command: the local stack, the simulator, the demo and the API client."""

from __future__ import annotations

import typer

from simulator.cli import simulator_command

app = typer.Typer(
    name="imsrep",
    help="Bulk in-region replication of Huawei Cloud IMS images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("simulator", help="Run the IMS + KMS + IAM simulator (a local stand-in for Huawei Cloud).")(
    simulator_command
)
