"""Keep a tomogram inside an expanded mask and fill the rest with noise that matches the
tomogram's own background, at full tomogram size (float32 MRC, same voxel size and origin).

Every flag of TomoPANDA's extract_masked_tomogram.py is accepted with its meaning
(--input_tomo --input_mask --output_tomo --sigma --threshold --noise_std --background_value
--expand_pixels --gaussian_sigma --fast --smooth_iterations --overwrite; dashes work too:
--input-tomo ...). By default cryoprocs does better than the script:

  * the mask is binarised with `mask > --threshold` (0.5), so 0/1 and 0/255 masks work and
    label maps keep every label (the script divides by 255 and loses labels 1..127);
  * it is expanded by an exact Euclidean distance (--expand_pixels, default 10 px; the
    script switches from a cube to a ball at 10 px);
  * a cosine soft edge of --soft-edge px (default 4) blends tomogram and noise;
  * the noise has the mean and std of the tomogram voxels outside the expanded mask
    (--noise-stats; the script uses mean --background_value = 0 and 0.1 x the global std,
    which leaves a step at the mask boundary), optionally with the background's power
    spectrum (--spectral-noise).

--parity reproduces the script voxel for voxel (its /255 binarisation, cube/ball rule,
--gaussian_sigma blur + 0.5 re-threshold, open/close, and np.random.seed(42) noise stream);
with --parity the defaults are the script's (--expand_pixels 5, --gaussian_sigma 1,
--smooth_iterations 1, --noise_std 0.1).

The Gaussian expansion (--expansion-mode gaussian, --sigma, --gaussian-threshold) is the
script's documented-but-unused "blur the mask, keep > threshold". Its real effect: a flat
boundary moves out by sigma x Phi^-1(1 - t) only, so t = 0.5 does not expand at all (convex
parts even shrink), t = 0.16 expands by ~1 sigma, t = 0.023 by ~2 sigma, and thin
structures expand less than flat ones. Without --gaussian-threshold, t is derived from
--expand_pixels so that a flat boundary moves by that distance (at most ~3 sigma). The
script's --gaussian_sigma step (blur the expanded mask, keep > 0.5) re-binarises: it rounds
corners and fills gaps narrower than ~sigma but does not expand or soften.

Memory: the tomogram and mask are streamed in z-slabs; resident are the mask's bounding box
(1 byte/voxel) with its distance map (2 bytes/voxel) and a few slabs. Measured peak RSS for a
300 x 1024 x 1024 float32 tomogram (1.26 GB) with a 10 % mask whose box spans 70 % of the
volume (2 cores): 1.2 GB (1.0x the tomogram) at --expand_pixels 10 and 1.5-2.0 GB (1.2-1.6x)
at 50, in 13-24 s; --spectral-noise about the same; --parity 2.9 GB (2.3x: the script's
global std needs a tomogram-sized temporary), in 48 s instead of the script's 139 s / 15.6 GB.
The output (and --soft-mask-out, --preview, --report) are written under temporary names and
renamed at the end: an interrupted run leaves no partial file, and an existing output is
never replaced without --overwrite.

examples:
  cryoprocs noise-fill --input_tomo T.mrc --input_mask M.mrc --output_tomo OUT.mrc
  cryoprocs noise-fill --input-tomo T.mrc --input-mask M.mrc --output-tomo OUT.mrc \\
      --expand_pixels 20 --soft-edge 6 --noise-stats robust --spectral-noise --preview OUT.png
  cryoprocs noise-fill --input_tomo T.mrc --input_mask M.mrc --output_tomo OUT.mrc \\
      --expand_pixels 30 --parity          # exactly what extract_masked_tomogram.py writes
"""
import argparse
import os

HELP = "keep a tomogram inside an expanded mask, fill the rest with matched noise"

NOISE_STATS = ("outside", "robust", "global", "parity")


def add_arguments(p):
    g = p.add_argument_group("files")
    g.add_argument("--input_tomo", "--input-tomo", required=True, metavar="T.mrc",
                   help="input tomogram (MRC, any mode)")
    g.add_argument("--input_mask", "--input-mask", required=True, metavar="M.mrc",
                   help="mask or label map with the tomogram's dimensions (MRC)")
    g.add_argument("--output_tomo", "--output-tomo", required=True, metavar="OUT.mrc",
                   help="output tomogram (float32 MRC, the tomogram's voxel size and origin)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (otherwise they are an error)")
    g.add_argument("--soft-mask-out", metavar="W.mrc",
                   help="also write the blend weight (1 = tomogram, 0 = noise) as float32 MRC")
    g.add_argument("--preview", metavar="P.png",
                   help="PNG of the central z-slice before | after, mask outline in yellow, "
                        "kept region outline in red")
    g.add_argument("--report", metavar="R.json", help="write the statistics as JSON")

    s = p.add_argument_group("the script's flags (same names and meaning)")
    s.add_argument("--threshold", type=float, default=0.5,
                   help="mask binarisation: voxels with mask > threshold are inside "
                        "(default 0.5; label maps: every label above it). With --parity the "
                        "script's rule is used: mask/255 if max > 1, then > 0.5")
    s.add_argument("--expand_pixels", "--expand-pixels", type=int, default=None, metavar="N",
                   help="expansion in px: every voxel within Euclidean distance N of the "
                        "mask is kept (default 10; --parity: 5, the script's cube for N <= 10)")
    s.add_argument("--sigma", type=float, default=2.0,
                   help="Gaussian expansion sigma in px (--expansion-mode gaussian; the "
                        "script parses it but never uses it)")
    s.add_argument("--gaussian_sigma", "--gaussian-sigma", type=float, default=None,
                   help="the script's boundary blur: blur the expanded mask with this sigma "
                        "(px) and keep > 0.5; it re-binarises, it does not soften "
                        "(default 0 = off; --parity: 1.0)")
    s.add_argument("--fast", action="store_true",
                   help="--parity only: the script's distance-transform expansion also for "
                        "N <= 10 (else a (2N+1)^3 cube)")
    s.add_argument("--smooth_iterations", "--smooth-iterations", type=int, default=None,
                   help="rounds of 3x3x3 morphological opening + closing of the mask "
                        "(default 0; --parity: 1, applied after the expansion as the script "
                        "does; otherwise before it)")
    s.add_argument("--noise_std", "--noise-std", type=float, default=None,
                   help="noise std relative to the std of --noise-stats (default 1.0; "
                        "--parity: 0.1 x the global std)")
    s.add_argument("--background_value", "--background-value", type=float, default=0.0,
                   help="noise mean for --noise-stats parity and --parity (the script: 0.0)")

    n = p.add_argument_group("cryoprocs options")
    n.add_argument("--soft-edge", type=float, default=None, metavar="W",
                   help="cosine transition from tomogram to noise over W px beyond the "
                        "expanded mask (default 4; 0 = hard edge)")
    n.add_argument("--noise-stats", choices=NOISE_STATS, default=None,
                   help="where the noise mean/std come from: outside = tomogram voxels "
                        "outside the expanded soft mask (default), robust = their median and "
                        "1.4826 MAD (gold beads, hot pixels), global = whole tomogram, "
                        "parity = the script's rule (--background_value, global std)")
    n.add_argument("--spectral-noise", action="store_true",
                   help="noise with the power spectrum of the background (otherwise white)")
    n.add_argument("--seed", type=int, default=42, help="random seed (default 42, as the script)")
    n.add_argument("--invert", action="store_true",
                   help="fill the expanded mask with noise and keep the rest")
    n.add_argument("--expansion-mode", choices=("euclidean", "gaussian"), default=None,
                   help="euclidean (exact distance, default) or gaussian (blur --sigma, keep "
                        "> --gaussian-threshold)")
    n.add_argument("--gaussian-threshold", type=float, default=None,
                   help="threshold of the Gaussian expansion (default: derived from "
                        "--expand_pixels; 0.5 does not expand)")
    n.add_argument("--parity", action="store_true",
                   help="reproduce extract_masked_tomogram.py exactly (same voxels)")
    n.add_argument("--threads", type=int, default=2, help="worker threads (default 2)")
    # protocol use (hidden): the voxel size of the outputs when the tomogram header has none
    # (Scipion's sampling rate)
    p.add_argument("--voxel-size", type=float, default=None, help=argparse.SUPPRESS)


def params_from_args(args):
    """:class:`NoiseFillParams` from parsed arguments; rejects --parity with new options."""
    from ..kernels.noisefill import NoiseFillParams, NoiseFillError
    if args.parity:
        bad = [flag for flag, val in (("--soft-edge", args.soft_edge),
                                      ("--noise-stats", args.noise_stats),
                                      ("--expansion-mode", args.expansion_mode),
                                      ("--gaussian-threshold", args.gaussian_threshold))
               if val is not None]
        bad += [flag for flag, val in (("--spectral-noise", args.spectral_noise),
                                       ("--invert", args.invert)) if val]
        if bad:
            raise NoiseFillError("--parity reproduces the script, which has no %s"
                                 % ", ".join(bad))
    elif args.fast:
        raise NoiseFillError("--fast only selects the script's expansion rule with --parity; "
                             "cryoprocs always uses the exact Euclidean distance")
    return NoiseFillParams(
        threshold=args.threshold, invert=args.invert, expansion=args.expand_pixels,
        expansion_mode=args.expansion_mode or "euclidean", sigma=args.sigma,
        gaussian_threshold=args.gaussian_threshold, boundary_sigma=args.gaussian_sigma,
        fast=args.fast, soft_edge=4.0 if args.soft_edge is None else args.soft_edge,
        smooth_iterations=args.smooth_iterations, noise_stats=args.noise_stats or "outside",
        noise_level=args.noise_std, background_value=args.background_value,
        spectral=args.spectral_noise, seed=args.seed, parity=args.parity)


def format_report(rep):
    """The script's closing statistics, plus what cryoprocs adds."""
    def ms(m, s):
        return "n/a" if m is None else "%.4f / %.4f" % (m, s)
    lines = [
        "mask voxels:              %d (%s)" % (rep["mask_voxels"], rep["binarisation"]),
        "expanded mask voxels:     %d (%s)" % (rep["expanded_voxels"], rep["expansion_rule"]),
        "expansion ratio:          %.2fx" % rep["expansion_ratio"],
        "kept / soft edge / filled: %d / %d / %d voxels"
        % (rep["kept_voxels"], rep["edge_voxels"], rep["filled_voxels"]),
        "noise mean / std:         %s (%s)" % (ms(rep["noise_mean"], rep["noise_std"]),
                                               rep["noise_stats"]),
        "kept region mean / std:   %s" % ms(rep["kept_mean"], rep["kept_std"]),
        "filled region mean / std: %s (replaced tomogram: %s)"
        % (ms(rep["filled_mean"], rep["filled_std"]),
           ms(rep["replaced_mean"], rep["replaced_std"])),
        "output mean / std:        %s" % ms(rep["output_mean"], rep["output_std"]),
        "time:                     %.1f s" % rep["seconds"],
    ]
    return "\n".join(lines + ["warning: %s" % w for w in rep.get("warnings", [])])


def run(args):
    from ..pipelines.noisefill import noise_fill_file

    params = params_from_args(args)
    for path in (args.input_tomo, args.input_mask):
        if not os.path.exists(path):
            raise FileNotFoundError("input %s does not exist" % path)
    rep = noise_fill_file(args.input_tomo, args.input_mask, args.output_tomo, params,
                          soft_mask_path=args.soft_mask_out, preview_png=args.preview,
                          report_json=args.report, threads=max(1, args.threads),
                          overwrite=args.overwrite, voxel_size=args.voxel_size)
    print(format_report(rep))
    print("wrote %s" % args.output_tomo)
    return 0


def args_from_params(params):
    """Command-line options that make :func:`params_from_args` give ``params`` (resolved):
    how ProtCryoprocsMaskedTomogramNoiseFill turns its form into a command line. Floats are
    written with ``repr`` so that they parse back to the same value."""
    p = params.resolved()
    args = ["--expand_pixels", str(p.expansion), "--gaussian_sigma", repr(p.boundary_sigma),
            "--smooth_iterations", str(p.smooth_iterations), "--noise_std", repr(p.noise_level),
            "--background_value", repr(p.background_value), "--seed", str(p.seed)]
    if p.parity:
        return ["--parity"] + args + (["--fast"] if p.fast else [])
    args += ["--threshold", repr(p.threshold), "--expansion-mode", p.expansion_mode,
             "--sigma", repr(p.sigma), "--soft-edge", repr(p.soft_edge),
             "--noise-stats", p.noise_stats]
    if p.gaussian_threshold is not None:
        args += ["--gaussian-threshold", repr(p.gaussian_threshold)]
    return args + (["--invert"] if p.invert else []) + \
        (["--spectral-noise"] if p.spectral else [])
