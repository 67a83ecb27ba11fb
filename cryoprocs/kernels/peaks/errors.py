"""Errors of the peak picker (``ValueError`` subclasses: the CLI prints them on one line)."""

__all__ = ["PeakPickingError", "AngleIndexError"]


class PeakPickingError(ValueError):
    """Invalid peak-picking inputs or parameters; the message names the offending values."""


class AngleIndexError(PeakPickingError):
    """Angle-map values that do not index the angle list (wrong numbering or wrong list)."""
