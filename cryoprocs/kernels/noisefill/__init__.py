"""Masked-tomogram noise fill: keep a tomogram inside an expanded mask, fill the rest with
noise that matches the tomogram's own background, at full tomogram size.

Arrays are ``[z, y, x]`` (x = MRC column); distances are in voxels (px). Everything here is
NumPy/SciPy on arrays or on array-likes that return ``[z0:z1]`` slabs (numpy arrays, memory
maps, :class:`cryoprocs.convert.mrc.MappedMrc`), so volumes larger than memory are
processed slab by slab.

Source of the behaviour: docs/noise-fill.md. Two modes:

* **cryoprocs (default)** (doc section 3): binarise with a threshold (``mask > threshold``,
  so label maps keep every label above it); optional morphological open/close; expand by an
  **exact Euclidean distance** N computed once (:func:`truncated_sq_edt`, restricted to the
  mask's bounding box plus N + W) or by the Gaussian blur + threshold rule; a cosine soft edge
  ``w = 0.5 (1 + cos(pi (d - N) / W))`` over ``N < d < N + W``; noise whose mean and standard
  deviation are those of the tomogram voxels **outside** the expanded (soft) mask (robust,
  global and the script's rule as options), drawn in float32 from a seeded
  ``numpy.random.default_rng([seed, z])`` stream per z-plane (so the output depends neither on
  the slab size nor on the number of threads), optionally with the background's power
  spectrum; ``out = w * tomo + (1 - w) * noise``.
* **parity**: the TomoPANDA script ``scripts/extract_masked_tomogram.py`` (commit 8852acc,
  GiantFurosemide/TomoPANDA; re-stated in the doc section 1, not copied): its ``/255``
  binarisation, its expansion rule (a (2N+1)^3 cube for N <= 10 unless ``fast``, else the
  Euclidean ball), its Gaussian blur + 0.5 re-threshold, its 3^3 open/close, and its noise
  ``np.random.normal(background_value, noise_std * std(tomogram))`` from the legacy
  ``RandomState(seed)`` stream (the script seeds the global one with 42), cast to the
  tomogram's dtype, and its hard blend ``tomo * m + noise * (1 - m)``: the same voxels as the
  script, computed on the mask's bounding box and in slabs.

The script's "Gaussian expansion" (blur sigma, threshold t) moves a flat boundary outwards
by ``d = sigma * Phi^-1(1 - t)`` only: t = 0.5 does not expand at all (convex parts shrink),
t = 0.16 expands by about 1 sigma, t = 0.023 by about 2 sigma, and thin structures expand
less than flat ones (:func:`gaussian_expansion_distance`).

Modules: :mod:`.params` (parameters, defaults per mode, validation), :mod:`.morphology`
(distances, soft edge, binary morphology), :mod:`.noise` (statistics, white and spectral
noise), :mod:`.geometry` (blend weights; the default mode's geometry), :mod:`.fill` (the
default mode and :func:`noise_fill`), :mod:`.parity` (the TomoPANDA parity mode) and
:mod:`.report`. Every name below is importable from ``cryoprocs.kernels.noisefill``.
"""
from .fill import noise_fill, noise_fill_array
from .geometry import SLAB_VOXELS, FillGeometry, prepare_geometry
from .morphology import (GAUSS_TRUNCATE, blur_threshold, cube_dilate, edge_weight_lut,
                         open_close, truncated_sq_edt)
from .noise import (MAD_TO_STD, SAMPLE_LIMIT, SpectralNoise, plane_noise, robust_stats,
                    sample_strides)
from .params import (EXPANSION_MODES, NOISE_STATS, RADIUS_MAX, NoiseFillError,
                     NoiseFillParams, gaussian_expansion_distance,
                     gaussian_threshold_for_distance)

__all__ = [
    "NOISE_STATS", "EXPANSION_MODES", "NoiseFillError", "NoiseFillParams",
    "gaussian_expansion_distance", "gaussian_threshold_for_distance", "truncated_sq_edt",
    "edge_weight_lut", "open_close", "cube_dilate", "blur_threshold", "sample_strides",
    "robust_stats", "plane_noise", "SpectralNoise", "FillGeometry", "prepare_geometry",
    "noise_fill", "noise_fill_array", "RADIUS_MAX", "SAMPLE_LIMIT", "SLAB_VOXELS",
    "GAUSS_TRUNCATE", "MAD_TO_STD",
]
