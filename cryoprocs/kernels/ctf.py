"""CTF and dose weights on RELION's half-spectrum grids (pure NumPy).

Formulas of RELION 5.0.1 (3dem/relion ``ver5.0``: ``src/ctf.cpp``,
``src/jaz/optics/damage.cpp``), see docs/extract-subtomos.md:

* ``CTF::initialise`` / ``CTF::getCTF`` (src/ctf.h, src/ctf.cpp)::

      lambda = 12.2643247 / sqrt(V (1 + V 0.978466e-6))      [Å, V in volts]
      K1 = pi lambda;  K2 = pi/2 Cs[Å] lambda^3;  K3 = atan(Q0 / sqrt(1 - Q0^2))
      K4 = -Bfac / 4;  K5 = phase_shift [rad]
      A  = Q^T diag(-dfU, -dfV) Q,   Q = [[cos a, sin a], [-sin a, cos a]]
      gamma = K1 (Axx X^2 + 2 Axy X Y + Ayy Y^2) + K2 u^4 - K5 - K3
      CTF = -sin(gamma) exp(K4 u^2) scale,  |CTF| < 1e-8 -> +-1e-8 (sign(0) = +)

  evaluated in float64 on the FFTW half grid of a ``box`` x ``box`` image (x = 0..box/2,
  y' = y for y < box/2 else y - box, X = x / (box ps), Y = y' / (box ps)) and stored as float32,
  as RELION's ``CTF::draw``.
* Tomography depth: RELION adds ``hand * ps * defocus_slope * dz`` to both defocus U and V
  (``Tomogram::getCtf``); pass it as ``defocus_offset``.
* Dose weights (``Damage::weightImage``): Grant & Grigorieff (2015)
  ``exp(-0.5 D / (0.245 k^-1.665 + 2.81))`` with ``D`` the pre-exposure (e/Å²) and
  ``k = r / (box ps)`` (1/Å), or ``exp(-B D k^2 / 4)`` when a B-factor per e/Å² > 0 is given.
"""
from typing import Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["electron_wavelength", "half_grid", "relion_ctf_half", "dose_weights_half"]


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV (RELION)."""
    v = float(voltage_kv) * 1e3
    return 12.2643247 / np.sqrt(v * (1.0 + v * 0.978466e-6))


def half_grid(box: Union[int, Tuple[int, int]], pixel_size: float) -> Tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies ``(X, Y)`` in 1/Å of the FFTW half grid, shapes ``(1, w//2+1)``
    and ``(h, 1)`` (RELION ``CTF::draw``: x = 0..w/2, y' = y or y - h). ``box`` is the size of
    a square image or ``(h, w)``."""
    h, w = (int(box), int(box)) if np.ndim(box) == 0 else (int(box[0]), int(box[1]))
    wh = w // 2 + 1
    x = np.arange(wh, dtype=np.float64)
    y = np.arange(h, dtype=np.float64)
    y = np.where(y < h // 2, y, y - h)
    return (x / (w * float(pixel_size)))[None, :], (y / (h * float(pixel_size)))[:, None]


def relion_ctf_half(box: int, pixel_size: float, defocus_u: Union[float, ArrayLike],
                    defocus_v: Union[float, ArrayLike], defocus_angle: Union[float, ArrayLike],
                    voltage: float, cs: float, amplitude_contrast: float,
                    phase_shift: Union[float, ArrayLike] = 0.0,
                    bfactor: Union[float, ArrayLike] = 0.0, scale: Union[float, ArrayLike] = 1.0,
                    defocus_offset: Union[float, ArrayLike] = 0.0,
                    dtype: DTypeLike = np.float32) -> np.ndarray:
    """RELION CTFs on the half grid, one per image.

    Parameters
    ----------
    box : int or (h, w)
        Image size in px (square, or height and width).
    pixel_size : float
        Å/px of the image (``ps * binning`` for binned extraction).
    defocus_u, defocus_v : array_like (K,) or scalar
        ``rlnDefocusU/V`` in Å (positive = underfocus).
    defocus_angle : array_like (K,) or scalar
        ``rlnDefocusAngle`` in degrees.
    voltage, cs, amplitude_contrast : float
        kV, mm, fraction.
    phase_shift, bfactor, scale : array_like (K,) or scalar
        ``rlnPhaseShift`` (deg), ``rlnCtfBfactor`` (Å²), ``rlnCtfScalefactor``.
    defocus_offset : array_like (K,) or scalar
        Added to both defocus U and V (Å): the depth term of tomography.
    dtype : numpy dtype
        Output dtype (RELION stores float32).

    Returns
    -------
    numpy.ndarray
        ``(K, h, w//2+1)`` (``(h, w//2+1)`` when every parameter is scalar).

    Raises
    ------
    ValueError
        amplitude contrast outside [0, 1) (RELION aborts on it).
    """
    q0 = float(amplitude_contrast)
    if not 0.0 <= q0 < 1.0:
        raise ValueError("amplitude contrast must be in [0, 1), got %r" % amplitude_contrast)
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (
        defocus_u, defocus_v, defocus_angle, phase_shift, bfactor, scale, defocus_offset)))
    scalar = arrays[0].ndim == 0
    du, dv, ang, phase, bfac, scl, off = (np.atleast_1d(a).ravel() for a in arrays)
    du = du + off
    dv = dv + off
    lam = electron_wavelength(voltage)
    K1 = np.pi / 2 * 2 * lam
    K2 = np.pi / 2 * (float(cs) * 1e7) * lam ** 3
    K3 = np.arctan(q0 / np.sqrt(1 - q0 * q0))
    K4 = -bfac / 4.0
    K5 = np.deg2rad(phase)
    a = np.deg2rad(ang)
    c, s = np.cos(a), np.sin(a)
    # A = Q^T D Q with Q = [[c, s], [-s, c]], D = diag(-du, -dv)
    Axx = -du * c * c - dv * s * s
    Axy = -du * c * s + dv * s * c
    Ayy = -du * s * s - dv * c * c
    X, Y = half_grid(box, pixel_size)
    X2, XY, Y2 = X * X, X * Y, Y * Y
    u2 = X2 + Y2
    u4 = u2 * u2
    e = (slice(None), None, None)
    gamma = K1 * (Axx[e] * X2 + 2.0 * Axy[e] * XY + Ayy[e] * Y2) + K2 * u4 - K5[e] - K3
    ctf = -np.sin(gamma)
    if np.any(K4 != 0.0):                   # exp(0) = 1 and x * 1.0 = x: skipping is exact
        ctf *= np.exp(K4[e] * u2)
    if np.any(scl != 1.0):
        ctf *= scl[e]
    small = np.abs(ctf) < 1e-8
    if small.any():
        ctf[small] = np.where(ctf[small] >= 0, 1e-8, -1e-8)
    out = ctf.astype(dtype, copy=False)
    return out[0] if scalar else out


def dose_weights_half(pre_exposure: ArrayLike, box: int, pixel_size: float,
                      bfactor_per_dose: float = 0.0, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Dose weights on the half grid, one per frame (RELION ``Damage::weightStack_GG``).

    Parameters
    ----------
    pre_exposure : array_like (F,)
        Dose received *before* each frame (``rlnMicrographPreExposure``), e/Å².
    box : int
        Image size in px.
    pixel_size : float
        Å/px of the image.
    bfactor_per_dose : float
        ``rlnCtfBfactorPerElectronDose`` of tomograms.star; > 0 selects ``exp(-B D k^2/4)``,
        otherwise Grant & Grigorieff (2015) critical exposure (weight 1 at k = 0).

    Returns
    -------
    numpy.ndarray
        ``(F, box, box//2+1)`` computed in float64 and returned as ``dtype``.
    """
    dose = np.atleast_1d(np.asarray(pre_exposure, dtype=np.float64))
    X, Y = half_grid(box, pixel_size)
    k2 = X * X + Y * Y
    if bfactor_per_dose and float(bfactor_per_dose) > 0:
        w = np.exp((-float(bfactor_per_dose) * dose / 4.0)[:, None, None] * k2[None])
    else:
        k = np.sqrt(k2)
        with np.errstate(divide="ignore"):
            d0 = 0.245 * np.power(k, -1.665) + 2.81          # inf at k = 0 -> weight 1
        w = np.exp(-0.5 * dose[:, None, None] / d0[None])
    return w.astype(dtype, copy=False)
