"""Pick oriented particles in a template-matching score map (GAPSTOP, STOPGAP, pytom) with
cryoCAT's scores_extract_particles semantics, an order of magnitude faster.

A voxel is a candidate if its score is strictly above the threshold; candidates are visited in
descending score and a candidate becomes a pick unless an earlier pick lies within
--min-distance voxels (cryoCAT's "particle_diameter" acts as this distance). The orientation of a
pick is the angle-list row the angle map holds at that voxel.

Threshold modes: direct (--threshold), sigma (mean + --sigma x std), percentile (--percentile of
the map values), triangle (cryoCAT's default, usually far too lenient), false-positives (the
default: mean + k std with k chosen so that a Gaussian background gives --n-false-positives
expected false positives over the map).

Outputs by extension: .csv (x,y,z = 0-based voxels with x = MRC column, score, phi,theta,psi in
zxz degrees), .star (RELION 5 particles; --star-format stopgap for a STOPGAP motive list), .em
(cryoCAT/TOM motive list, 1-based). Maps may be MRC or EM.

examples:
  cryoprocs pick --scores scores_0_1.mrc --angles angles_0_1.mrc --angle-list angles_20_C1.txt \\
      --min-distance 10 --output picks.csv
  cryoprocs pick --scores id_2_scores.em --angles id_2_angles.em --angle-list anglist.csv \\
      --angles-order zzx --angles-numbering 1 --min-distance 10 --threshold-mode sigma \\
      --sigma 3 --cryocat-compatible --output picks.em
"""
import argparse

from ..constants import DEFAULT_SYMMETRY, PEAKS_MASK_MODES, PEAKS_ORDERS, PEAKS_THR_MODES
from . import add_nonfinite_argument, nonfinite_args, nonfinite_policy

HELP = "pick oriented peaks in template-matching score maps (cryoCAT semantics)"


def add_arguments(p):
    p.add_argument("--scores", required=True, metavar="S.mrc", help="score map (MRC or EM)")
    p.add_argument("--angles", required=True, metavar="A.mrc",
                   help="angle-index map of the same shape (MRC or EM)")
    p.add_argument("--angle-list", required=True, metavar="L.csv",
                   help="angle list: 3 comma-separated columns per row, no header")
    p.add_argument("--min-distance", required=True, type=float, metavar="D",
                   help="minimum distance between picks in voxels (cryoCAT particle_diameter): "
                        "a candidate within D of an earlier pick is excluded")
    p.add_argument("--threshold-mode", default="false-positives",
                   choices=PEAKS_THR_MODES,
                   help="how the score threshold is chosen (default: false-positives)")
    p.add_argument("--threshold", type=float, metavar="T", help="score threshold (direct mode)")
    p.add_argument("--sigma", type=float, default=3.0, metavar="K",
                   help="threshold = mean + K std (sigma mode; default 3)")
    p.add_argument("--percentile", type=float, default=99.5, metavar="P",
                   help="threshold = P-th percentile of the map values (default 99.5)")
    p.add_argument("--n-false-positives", type=float, default=10.0, metavar="F",
                   help="expected false positives over the map (false-positives mode; "
                        "default 10)")
    p.add_argument("--n-particles", type=int, metavar="N",
                   help="stop after N picks (cryoCAT n_particles)")
    p.add_argument("--border", type=int, default=0, metavar="B",
                   help="exclude candidates closer than B voxels to a face (default 0)")
    p.add_argument("--tomo-mask", metavar="M", help="tomogram mask (MRC or EM, same shape)")
    p.add_argument("--mask-mode", choices=PEAKS_MASK_MODES, default="multiply",
                   help="multiply: scores x mask before the statistics (cryoCAT); inside: "
                        "statistics and candidates only where mask > 0")
    p.add_argument("--angles-order", choices=PEAKS_ORDERS, default="zxz",
                   help="angle-list columns: zxz = phi,theta,psi (GAPSTOP); zzx = phi,psi,theta "
                        "(STOPGAP)")
    p.add_argument("--angles-numbering", type=int, choices=(0, 1), default=0,
                   help="angle-map values are 0-based (GAPSTOP) or 1-based (STOPGAP) rows")
    p.add_argument("--symmetry", default=DEFAULT_SYMMETRY, metavar="Cn",
                   help="C<n> symmetry: phi gets a random multiple of 360/n (seeded)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed of the symmetry randomisation (default 0)")
    p.add_argument("--no-symmetry-randomization", action="store_true",
                   help="keep phi from the angle list with C<n> symmetry")
    p.add_argument("--min-peak-size", type=int, metavar="V",
                   help="reject peaks with fewer than V candidate voxels within the minimum "
                        "distance (STOPGAP cluster_size)")
    p.add_argument("--angular-filter", type=float, nargs=3, metavar=("N", "DEG", "R"),
                   help="reject peaks with fewer than N voxels within R voxels whose "
                        "orientation is within DEG degrees of the peak's")
    p.add_argument("--cryocat-compatible", action="store_true",
                   help="cryoCAT 0.7.1 tie order (reproduces its picks exactly with its "
                        "options: no border, multiply mask, no filters)")
    p.add_argument("--output", required=True, metavar="OUT",
                   help="picks file: .csv, .star or .em")
    p.add_argument("--star-format", choices=("relion5", "stopgap"), default="relion5",
                   help=".star flavour (default relion5)")
    p.add_argument("--pixel-size", type=float, metavar="A",
                   help="voxel size in Å for RELION 5 coordinates (default: the map header)")
    p.add_argument("--tomo-name", metavar="NAME",
                   help="rlnTomoName for RELION 5 (default: the score-map file stem)")
    p.add_argument("--tomo-id", type=int, default=1, help="tomo_id in motive lists (default 1)")
    p.add_argument("--diagnostics", metavar="PNG",
                   help="write the score histogram / sorted-score plot here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_nonfinite_argument(p)
    # protocol use (hidden): the whole pick as an .npz result (written last, atomically)
    # and cryoCAT's angular distance maps (total, normal, in-plane; float32 MRC)
    p.add_argument("--result", metavar="NPZ", help=argparse.SUPPRESS)
    p.add_argument("--angular-distance-maps", nargs=3, metavar=("TOTAL", "NORMAL", "INPLANE"),
                   help=argparse.SUPPRESS)


def run(args):
    import os

    from ..convert.paths import check_io
    from ..pipelines import peaks

    if args.threshold_mode == "direct" and args.threshold is None:
        raise ValueError("--threshold-mode direct needs --threshold")
    if args.n_particles is not None and args.n_particles < 1:
        raise ValueError("--n-particles must be >= 1; got %d" % args.n_particles)
    if args.angular_filter:
        n, deg, r = args.angular_filter
        if n < 1 or deg < 0 or r <= 0:
            raise ValueError("--angular-filter N DEG R needs N >= 1, DEG >= 0 and R > 0; got "
                             "%g %g %g" % (n, deg, r))
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in peaks.OUTPUT_FORMATS:
        raise ValueError("--output %s: use a .csv, .star or .em file name" % args.output)
    if args.diagnostics and os.path.splitext(args.diagnostics)[1].lower() != ".png":
        raise ValueError("--diagnostics %s: use a .png file name" % args.diagnostics)
    check_io(inputs=[("--scores", args.scores), ("--angles", args.angles),
                     ("--angle-list", args.angle_list), ("--tomo-mask", args.tomo_mask)],
             outputs=[("--output", args.output), ("--diagnostics", args.diagnostics)]
             + _protocol_outputs(args), overwrite=args.overwrite)
    _check_min_distance(args)
    opts = options_from_args(args)
    result, info = peaks.pick_volumes(args.scores, args.angles, args.angle_list, opts,
                                      mask_path=args.tomo_mask, nonfinite=nonfinite_policy(args))
    pixel = args.pixel_size or info["voxel_size"]
    if ext == ".star" and args.star_format == "relion5" and not pixel:
        raise ValueError("RELION 5 coordinates are in Å: the score map header has no voxel "
                         "size; pass --pixel-size")
    tomo_name = args.tomo_name or os.path.splitext(os.path.basename(args.scores))[0]
    _write_outputs(args, ext, result, info, opts, tomo_name, pixel)
    print(peaks.result_summary(result, os.path.basename(args.scores)))
    for m in result.messages:
        print("note: %s" % m)
    if args.diagnostics:
        print("wrote %s" % args.diagnostics)
    print("wrote %s (%d picks)" % (args.output, result.n_picks))
    return 0


def options_from_args(args):
    """:class:`~cryoprocs.pipelines.peaks.PickOptions` of parsed arguments."""
    from ..pipelines import peaks
    af = None
    if args.angular_filter:
        n, deg, r = args.angular_filter
        af = {"min_count": int(n), "max_angle": float(deg), "radius": float(r)}
    return peaks.PickOptions(
        min_distance=args.min_distance, threshold_mode=args.threshold_mode,
        threshold=args.threshold, sigma=args.sigma, percentile=args.percentile,
        n_false_positives=args.n_false_positives, max_picks=args.n_particles,
        border=args.border, mask_mode=args.mask_mode, angles_order=args.angles_order,
        angles_numbering=args.angles_numbering, symmetry=args.symmetry,
        randomize_symmetry=not args.no_symmetry_randomization, seed=args.seed,
        min_peak_size=args.min_peak_size, angular_filter=af,
        compatible=args.cryocat_compatible)


def _protocol_outputs(args):
    """``[(label, path)]`` of the hidden protocol outputs (--result, --angular-distance-maps),
    for the path checks and claims of every output."""
    outs = [("--result", args.result)]
    outs += [("--angular-distance-maps", m) for m in (args.angular_distance_maps or ())]
    if args.result and not args.result.endswith(".npz"):
        raise ValueError("--result %s: use a .npz file name" % args.result)
    return [o for o in outs if o[1]]


def _check_min_distance(args):
    """A minimum distance beyond the score map's diagonal: an error naming the option."""
    import numpy as np

    from ..pipelines import peaks
    shape = peaks.volume_shape(args.scores)
    diagonal = float(np.sqrt(sum((s - 1) ** 2 for s in shape)))
    if not args.min_distance <= diagonal:
        raise ValueError("--min-distance %g voxels is larger than the score map %s (%s voxels "
                         "(x, y, z), diagonal %.1f voxels): every pick would exclude all the "
                         "others; give the minimum distance between particles in voxels"
                         % (args.min_distance, args.scores, "x".join(map(str, shape[::-1])),
                            diagonal))


def _write_outputs(args, ext, result, info, opts, tomo_name, pixel):
    """Every output under a temporary name, renamed as one group: the diagnostics, the
    angular distance maps, the picks, then the hidden --result (its presence means done)."""
    import os

    from ..convert import outputs
    from ..pipelines import peaks
    pairs = []
    try:
        if args.diagnostics:
            tmp = outputs.temp_path(args.diagnostics, ".png")
            pairs.append((tmp, args.diagnostics))
            peaks.plot_diagnostics(tmp, result, os.path.basename(args.scores))
        if args.angular_distance_maps:
            tmps = {}
            for name, path in zip(("total", "normal", "inplane"), args.angular_distance_maps):
                tmps[name] = outputs.temp_path(path, ".mrc")
                pairs.append((tmps[name], path))
            peaks.write_angular_distance_maps(args.angles, args.angle_list, tmps,
                                              opts.angles_order, opts.angles_numbering,
                                              opts.symmetry,
                                              voxel_size=args.pixel_size or info["voxel_size"])
        tmp = outputs.temp_path(args.output, ext)
        pairs.append((tmp, args.output))
        picks = peaks.TomogramPicks.from_result(result, tomo_name=tomo_name, tomo_id=args.tomo_id,
                                                shape_xyz=tuple(info["shape"])[::-1],
                                                pixel_size=pixel)
        peaks.export_picks(tmp, picks, star_format=args.star_format, overwrite=True)
        if args.result:
            tmp = outputs.temp_path(args.result, ".npz")
            pairs.append((tmp, args.result))
            peaks.save_result(tmp, result, tsId=args.tomo_name, shape=list(info["shape"]))
        outputs.commit_group(pairs)
    except BaseException:
        for tmp, _ in pairs:
            outputs.discard_temp(tmp)
        raise


def args_from_options(opts, nonfinite="error"):
    """Command-line options that make ``run`` pick with :class:`PickOptions` ``opts`` (and
    :func:`~cryoprocs.commands.nonfinite_policy` give ``nonfinite``): how
    ProtCryoprocsScoresPeakPicking turns its form into a command line (floats by ``repr``)."""
    args = ["--min-distance", repr(float(opts.min_distance)),
            "--threshold-mode", opts.threshold_mode, "--sigma", repr(float(opts.sigma)),
            "--percentile", repr(float(opts.percentile)),
            "--n-false-positives", repr(float(opts.n_false_positives)),
            "--border", str(int(opts.border)), "--mask-mode", opts.mask_mode,
            "--angles-order", opts.angles_order,
            "--angles-numbering", str(int(opts.angles_numbering)),
            "--symmetry", opts.symmetry, "--seed", str(int(opts.seed))]
    if opts.threshold is not None:
        args += ["--threshold", repr(float(opts.threshold))]
    if opts.max_picks:
        args += ["--n-particles", str(int(opts.max_picks))]
    if not opts.randomize_symmetry:
        args.append("--no-symmetry-randomization")
    if opts.min_peak_size:
        args += ["--min-peak-size", str(int(opts.min_peak_size))]
    if opts.angular_filter:
        af = opts.angular_filter
        args += ["--angular-filter", str(int(af["min_count"])), repr(float(af["max_angle"])),
                 repr(float(af["radius"]))]
    if opts.compatible:
        args.append("--cryocat-compatible")
    return args + nonfinite_args(nonfinite)
