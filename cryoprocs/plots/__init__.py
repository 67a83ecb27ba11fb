"""Figures of cryoprocs results: pure NumPy + matplotlib, no pyworkflow / pwem / tomo import.

The Scipion viewers (:mod:`cryoprocs.viewers`) read the protocol outputs and hand arrays
(or memory-mapped volumes) to these functions, which draw on a given
:class:`matplotlib.figure.Figure`. They work with any canvas: Tk in the Scipion GUI, Agg in
the unit tests. Interactive figures (sliders, buttons) return a handle that keeps the
widgets alive; it is also stored on the figure as ``fig._cryoprocs_handle``.

* :mod:`.images`: display windows, central slices, montages, sphere sections (NumPy only).
* :mod:`.figures`: the figures (orthogonal slices, mask panels, slice browsers, FSC, picks,
  galleries, the movie preview with play buttons, tilt-series plots).
"""
