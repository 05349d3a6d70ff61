"""Flags shown as flags in ``--help``.

typer's rich help, from the releases that carry their own copy of click, prints a value type after every flag
(``--wait <bool>``, ``--help <bool>``) as if it took a value; a flag takes none, and click's plain help and earlier
typers print none. ``show_flags_bare`` makes the rich help print none either, for every flag of every command
(typer's own ``--help`` and completion options included), and leaves a typer without that method alone.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_MARK = "_imsrep_flags_bare"


def show_flags_bare() -> None:
    """Idempotent: the help of a flag gets no value type."""
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, _MARK, False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    setattr(display_type_rich, _MARK, True)
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
