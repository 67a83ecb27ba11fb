"""Viewers of cryoprocs results (only this namespace is scanned by Scipion for viewers)."""
from .viewer_movie import CryoprocsMovieViewer  # noqa: F401 (Scipion scans this namespace)
