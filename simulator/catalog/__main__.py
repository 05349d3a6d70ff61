"""``python -m simulator.catalog generate --images N --mix ordinary=0.9,iso=0.02 --out FILE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from simulator.catalog.generate import generate, parse_mix
from simulator.catalog.kinds import KINDS

app = typer.Typer(help="Simulator catalogue tools.", no_args_is_help=True, pretty_exceptions_enable=False)


@app.command("generate")
def generate_command(
    images: Annotated[int, typer.Option(min=0, help="Number of images per project.")],
    out: Annotated[Path, typer.Option(help="Where to write the JSON catalogue.")],
    mix: Annotated[
        str, typer.Option(help=f"Weights per kind, e.g. ordinary=0.9,iso=0.02. Kinds: {', '.join(KINDS)}.")
    ] = "ordinary=1",
    seed: Annotated[int, typer.Option(help="Shuffles the kinds reproducibly.")] = 0,
) -> None:
    """Write a catalogue whose 'default' entry every project of the simulator uses."""
    try:
        weights = parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from exc
    out.write_text(json.dumps(generate(images, weights, seed), indent=1) + "\n", encoding="utf-8")


@app.callback()
def main() -> None:
    """Keeps ``generate`` a named sub-command (Typer flattens a single-command app)."""


if __name__ == "__main__":
    app()
