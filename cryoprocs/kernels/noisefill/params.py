"""Parameters of the masked-tomogram noise fill (:class:`NoiseFillParams`), their defaults
in each mode, their validation, and the Gaussian-expansion rule that links a blur threshold to a
distance."""
import math
from dataclasses import asdict, dataclass
from typing import Optional

from scipy.special import ndtri

__all__ = ["NOISE_STATS", "EXPANSION_MODES", "RADIUS_MAX", "MODE_DEFAULTS", "NoiseFillError",
           "NoiseFillParams", "gaussian_expansion_distance", "gaussian_threshold_for_distance"]

NOISE_STATS = ("outside", "robust", "global", "parity")
EXPANSION_MODES = ("euclidean", "gaussian")
RADIUS_MAX = 180                    # (R+1)^2 + R^2 must fit uint16
#: the defaults of the options left None, per mode: cryoprocs, and the TomoPANDA script's own
#: flag defaults in parity mode
MODE_DEFAULTS = {
    "cryoprocs": dict(expansion=10, smooth_iterations=0, noise_level=1.0, boundary_sigma=0.0),
    "parity": dict(expansion=5, smooth_iterations=1, noise_level=0.1, boundary_sigma=1.0),
}


class NoiseFillError(ValueError):
    """Invalid noise-fill parameters or inputs; the message names the offending values."""


@dataclass
class NoiseFillParams:
    """Parameters of :func:`noise_fill` (the script's flag names in brackets).

    Attributes
    ----------
    threshold : float
        mask binarisation: voxels with ``mask > threshold`` are inside [--threshold]. 0.5
        keeps 0/1 and 0/255 masks and every label of a label map. Ignored with ``parity``.
    invert : bool
        fill the (expanded) segmentation instead of its outside.
    expansion : int or None
        N, px [--expand_pixels]. Euclidean mode: voxels within distance N of the mask.
        None: 10 (beyond the dark/bright density halo around segmented objects, so the
        transition falls in background), 5 with ``parity`` (the script's default).
    expansion_mode : str
        ``euclidean`` (exact distance) or ``gaussian`` (blur ``sigma`` + ``gaussian_threshold``).
    sigma : float
        Gaussian-mode blur sigma, px [--sigma].
    gaussian_threshold : float or None
        Gaussian-mode threshold of the blurred 0/1 mask; None derives it from ``expansion``
        (:func:`gaussian_threshold_for_distance`); 0.5 does not expand.
    boundary_sigma : float or None
        the script's "boundary blur" [--gaussian_sigma]: blur the expanded 0/1 mask and keep
        ``> 0.5`` (re-binarises; rounds corners, fills sub-sigma gaps). None: 1.0 with
        ``parity``, else 0 (off).
    fast : bool
        parity only [--fast]: Euclidean ball even for N <= 10.
    soft_edge : float
        W, px: cosine transition from tomogram to noise over ``N < d < N + W`` (0 = hard).
    smooth_iterations : int or None
        rounds of 3^3 opening + closing [--smooth_iterations]; None: 1 with ``parity``, else 0.
        The script smooths the expanded mask; cryoprocs smooths the binarised mask before the
        expansion (a ball expansion already closes gaps narrower than 2N).
    noise_stats : str
        ``outside`` (mean/std of the tomogram outside the expanded soft mask), ``robust``
        (median and 1.4826 MAD there), ``global`` (whole tomogram), ``parity`` (the script's
        rule: mean ``background_value``, std of the whole tomogram).
    noise_level : float or None
        noise std relative to the chosen std [--noise_std]; None: 0.1 with ``parity``, else 1.
    background_value : float
        noise mean for ``noise_stats='parity'`` and parity mode [--background_value].
    spectral : bool
        noise with the power spectrum of the background (otherwise white).
    seed : int
        random seed (the script: 42).
    parity : bool
        reproduce the script exactly (see the module docstring).
    """
    threshold: float = 0.5
    invert: bool = False
    expansion: Optional[int] = None
    expansion_mode: str = "euclidean"
    sigma: float = 2.0
    gaussian_threshold: Optional[float] = None
    boundary_sigma: Optional[float] = None
    fast: bool = False
    soft_edge: float = 4.0
    smooth_iterations: Optional[int] = None
    noise_stats: str = "outside"
    noise_level: Optional[float] = None
    background_value: float = 0.0
    spectral: bool = False
    seed: int = 42
    parity: bool = False

    @property
    def mode(self) -> str:
        """``"parity"`` (the TomoPANDA script) or ``"cryoprocs"``."""
        return "parity" if self.parity else "cryoprocs"

    def resolved(self) -> "NoiseFillParams":
        """A copy with the mode's defaults filled in (:data:`MODE_DEFAULTS`), validated. The
        parity mode ignores the options the script does not have (expansion mode, statistics
        rule, soft edge, spectral noise), so they are not checked there.

        Raises
        ------
        NoiseFillError
            a value out of range (named with the value).
        """
        p = NoiseFillParams(**asdict(self))
        for name, value in MODE_DEFAULTS[p.mode].items():
            if getattr(p, name) is None:
                setattr(p, name, value)
        p._check_shared()
        if not p.parity:
            p._check_cryoprocs_options()
        return p

    def _check_shared(self):
        p = self
        p.expansion = _as_int("expansion", p.expansion)
        p.smooth_iterations = _as_int("smooth_iterations", p.smooth_iterations)
        if p.expansion < 0:
            raise NoiseFillError("expansion must be >= 0 px, got %s" % p.expansion)
        if p.smooth_iterations < 0:
            raise NoiseFillError("smooth_iterations must be >= 0, got %s" % p.smooth_iterations)
        if p.boundary_sigma < 0:
            raise NoiseFillError("boundary (gaussian) sigma must be >= 0 px, got %s"
                                 % p.boundary_sigma)
        if p.noise_level < 0:
            raise NoiseFillError("noise level must be >= 0, got %s" % p.noise_level)

    def _check_cryoprocs_options(self):
        p = self
        if p.expansion_mode not in EXPANSION_MODES:
            raise NoiseFillError("expansion mode %r unknown; expected one of %s"
                                 % (p.expansion_mode, ", ".join(EXPANSION_MODES)))
        if p.noise_stats not in NOISE_STATS:
            raise NoiseFillError("noise statistics %r unknown; expected one of %s"
                                 % (p.noise_stats, ", ".join(NOISE_STATS)))
        if not p.soft_edge >= 0:
            raise NoiseFillError("soft edge must be >= 0 px, got %s" % p.soft_edge)
        if p.expansion_mode == "euclidean" and p.expansion + math.ceil(p.soft_edge) > RADIUS_MAX:
            raise NoiseFillError("expansion + soft edge = %s px exceeds the supported %d px"
                                 % (p.expansion + p.soft_edge, RADIUS_MAX))
        if p.expansion_mode == "gaussian":
            p._check_gaussian_expansion()

    def _check_gaussian_expansion(self):
        p = self
        if not p.sigma > 0:
            raise NoiseFillError("Gaussian expansion needs sigma > 0 px, got %s" % p.sigma)
        if p.gaussian_threshold is None:
            if p.expansion > 3.0 * p.sigma:
                raise NoiseFillError(
                    "a Gaussian expansion of %s px needs sigma >= %.2f px (the blur of "
                    "sigma %s px reaches only about 3 sigma = %.1f px); use the Euclidean "
                    "expansion or a larger sigma" % (p.expansion, p.expansion / 3.0,
                                                     p.sigma, 3 * p.sigma))
            p.gaussian_threshold = gaussian_threshold_for_distance(p.expansion, p.sigma)
        elif not 0 < p.gaussian_threshold < 1:
            raise NoiseFillError("Gaussian threshold must be in (0, 1), got %s"
                                 % p.gaussian_threshold)


def _as_int(name, value):
    if int(value) != value:
        raise NoiseFillError("%s must be a whole number of px, got %s" % (name, value))
    return int(value)


def gaussian_expansion_distance(sigma: float, threshold: float) -> float:
    """Outward shift of a flat boundary by "blur with ``sigma`` then keep ``> threshold``".

    A flat 0/1 step blurred with a Gaussian of ``sigma`` px equals ``Phi(-x / sigma)`` at
    signed distance x outside it, so the threshold t is crossed at ``x = sigma Phi^-1(1 - t)``
    (docs/noise-fill.md). Returns px; 0 for t = 0.5, negative above.
    Convex parts move less and thin structures much less than this.
    """
    return float(sigma) * float(ndtri(1.0 - float(threshold)))


def gaussian_threshold_for_distance(distance: float, sigma: float) -> float:
    """Threshold t such that the Gaussian rule moves a flat boundary by ``distance`` px:
    ``t = 1 - Phi(distance / sigma)``."""
    return float(0.5 * math.erfc(float(distance) / (float(sigma) * math.sqrt(2.0))))
