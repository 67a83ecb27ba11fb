"""The report of a noise fill (shared by both modes): geometry counts, per-slab moments of the
kept, filled and replaced voxels merged exactly, timings and the central-slice preview."""
import time
from dataclasses import asdict
from typing import List, Optional, Tuple

import numpy as np

from .geometry import FillGeometry
from .noise import Moments, moments_of
from .params import NoiseFillParams

__all__ = ["geometry_report", "slab_stats", "uniform_stats", "stat_view", "preview_planes",
           "finish_report"]


def geometry_report(shape: Tuple[int, int, int], p: NoiseFillParams, geo: FillGeometry) -> dict:
    """The report's first fields: shape, parameters and the geometry's counts and timing."""
    report = {"shape": shape, "parity": p.parity, "params": asdict(p)}
    report.update(geo.counts)
    report["expansion_ratio"] = (report["expanded_voxels"] / report["mask_voxels"]
                                 if report["mask_voxels"] else 0.0)
    report["expansion_rule"] = geo.info.get("expansion_rule")
    report["geometry_seconds"] = geo.info["seconds"]
    report["geometry_bytes"] = geo.nbytes()
    return report


def finish_report(report: dict, parts: List[dict], preview_data: dict, preview: bool,
                  t_start: float) -> dict:
    """Merge the per-slab statistics ``parts`` into ``report`` (exact counts, moments)."""
    kept, filled, replaced, total = Moments(), Moments(), Moments(), Moments()
    nk = nf = edge = 0
    for st in parts:
        kept, filled, replaced, total = (kept + st["kept"], filled + st["filled"],
                                         replaced + st["replaced"], total + st["total"])
        edge += st["edge"]
        nk += st["kept_n"]
        nf += st["filled_n"]
    report["kept_voxels"], report["filled_voxels"], report["edge_voxels"] = nk, nf, edge
    report["kept_mean"], report["kept_std"] = kept.result()
    report["filled_mean"], report["filled_std"] = filled.result()
    report["replaced_mean"], report["replaced_std"] = replaced.result()
    report["output_mean"], report["output_std"] = total.result()
    report["seconds"] = time.time() - t_start
    if preview:
        report["preview"] = preview_data
    return report


def stat_view(a: np.ndarray) -> np.ndarray:
    """Voxels the summary means/stds are taken from: all of them for planes below 512^2
    px, every second row and column above (counts stay exact)."""
    return a[:, ::2, ::2] if a.shape[1] * a.shape[2] >= (512 * 512) else a


def slab_stats(t: np.ndarray, out: np.ndarray, w: np.ndarray,
               keep: Optional[np.ndarray] = None) -> dict:
    """Moments of the kept, filled, replaced and all output voxels of one slab (weights
    ``w``), and the voxel counts."""
    keep = (w == 1) if keep is None else keep
    fill = w == 0
    nk, nf = int(np.count_nonzero(keep)), int(np.count_nonzero(fill))
    tv, ov, kv, fv = (stat_view(a) for a in (t, out, keep, fill))
    return {"kept": moments_of(ov[kv]), "filled": moments_of(ov[fv]),
            "replaced": moments_of(tv[fv]), "total": moments_of(ov),
            "edge": int(w.size - nk - nf), "kept_n": nk, "filled_n": nf}


def uniform_stats(t: np.ndarray, out: np.ndarray, w: float) -> dict:
    """Slab stats when the whole slab has weight ``w`` (0 or 1)."""
    n = out.size
    t, out = stat_view(t), stat_view(out)
    total = moments_of(out)
    if w == 0:
        return {"kept": Moments(), "filled": total, "replaced": moments_of(t), "total": total,
                "edge": 0, "kept_n": 0, "filled_n": n}
    return {"kept": total, "filled": Moments(), "replaced": Moments(), "total": total,
            "edge": 0, "kept_n": n, "filled_n": 0}


def preview_planes(before: np.ndarray, after: np.ndarray, weight: np.ndarray,
                   geo: FillGeometry) -> dict:
    """The central z-slice before and after, its weights and the binarised mask (report)."""
    pm = geo.preview_mask
    seg = np.zeros(before.shape, dtype=bool)
    if pm is not None:
        (z0, z1, y0, y1, x0, x1), plane = pm
        seg[y0:y1, x0:x1] = plane
    return {"before": np.array(before, dtype=np.float32), "after": np.array(after),
            "weight": np.array(weight, dtype=np.float32), "mask": seg,
            "z": geo.shape[0] // 2}
