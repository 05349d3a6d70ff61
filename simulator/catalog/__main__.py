"""``python -m simulator.catalog generate --images N --mix ordinary=0.9,iso=0.02 --out FILE``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from simulator.catalog.generate import PLATFORMS, generate, parse_mix
from simulator.catalog.kinds import KINDS

app = typer.Typer(help="Simulator catalogue tools.", no_args_is_help=True, pretty_exceptions_enable=False)


@app.command("generate")
def generate_command(
    images: Annotated[int, typer.Option(min=0, help="Number of images per project.")],
    out: Annotated[Path, typer.Option(help="Where to write the JSON catalogue.")],
    mix: Annotated[
        str, typer.Option(help=f"Weights per kind, e.g. ordinary=0.9,iso=0.02. Kinds: {', '.join(KINDS)}.")
    ] = "ordinary=1",
    seed: Annotated[int, typer.Option(help="Drives every choice, reproducibly.")] = 0,
    keys: Annotated[
        str,
        typer.Option(
            help="Key aliases encrypted images are spread over, comma-separated; new aliases become enabled keys."
        ),
    ] = "old-key",
    platforms: Annotated[
        str | None,
        typer.Option(
            help=f"Weights per __platform, e.g. Ubuntu=3,Windows=1 (default: each kind's own). Platforms: "
            f"{', '.join(PLATFORMS)}."
        ),
    ] = None,
    tagged: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of images with one to three tags (team, env, cost-center).")
    ] = 0.0,
    created_from: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="Spread created_at from this day (UTC)...")
    ] = None,
    created_to: Annotated[
        datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="...to this one (exclusive).")
    ] = None,
) -> None:
    """Write a catalogue whose 'default' entry every project of the simulator uses."""
    try:
        weights = parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from exc
    try:
        platform_weights = parse_mix(platforms, tuple(PLATFORMS)) if platforms else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--platforms") from exc
    aliases = [alias.strip() for alias in keys.split(",") if alias.strip()]
    if not aliases:
        raise typer.BadParameter("give at least one key alias", param_hint="--keys")
    created = None
    if (created_from is None) != (created_to is None):
        raise typer.BadParameter("give both --from and --to, or neither", param_hint="--from/--to")
    if created_from is not None and created_to is not None:
        if created_to <= created_from:
            raise typer.BadParameter("--to must come after --from", param_hint="--to")
        created = (created_from.replace(tzinfo=timezone.utc), created_to.replace(tzinfo=timezone.utc))
    data = generate(images, weights, seed, keys=aliases, platforms=platform_weights, tagged=tagged, created=created)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


@app.callback()
def main() -> None:
    """Keeps ``generate`` a named sub-command (Typer flattens a single-command app)."""


if __name__ == "__main__":
    app()
