"""How urgent a batch is: its share of its pool's slots while other batches wait too (``worker/data/slots.py``)."""

from __future__ import annotations

from enum import Enum


class Priority(str, Enum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def weight(self) -> int:
        """Slots a batch gets per slot of a ``low`` batch while both wait."""
        return {Priority.HIGH: 4, Priority.NORMAL: 2, Priority.LOW: 1}[self]

    @property
    def stride(self) -> float:
        return 1.0 / self.weight
