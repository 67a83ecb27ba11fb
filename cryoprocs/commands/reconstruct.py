"""Reconstruct a subtomogram average with half maps and FSC, with RELION 5.0.1's numbers.

Reads a RELION 5 tomography project (particles.star with orientations and rlnRandomSubset,
tomograms.star, the per-tilt-series STAR files and the tilt stacks) and does what
``relion_tomo_reconstruct_particle`` does: per particle and visible tilt, a box cut from the
tilt image, circle crop with background subtraction, Fourier crop to the binning, CTF x dose
weighting within the dose cut-off, trilinear Fourier backprojection into data and weight
volumes per half set; then symmetrisation, sinc^2 gridding correction, CTF division
(RELION's heuristic, or Wiener with --snr) and taper. Writes DIR/merged.mrc, DIR/half1.mrc,
DIR/half2.mrc (voxel size = tilt-series pixel size x binning), DIR/fsc.star and DIR/fsc.png
(FSC between the half maps, resolution at 0.143) and DIR/reconstruction.json.

The per-tilt-series partial sums are kept in DIR/partial/: a re-run after an interruption
skips the finished tilt series, and a change of a final-stage setting (--sym, --snr, --taper,
--crop-size) only redoes the final stage. Maps already in DIR that were made from other inputs
or settings are replaced only with --overwrite.

RELION equivalents: --box-size = --b, --crop-size = --crop, --bin, --sym, --snr = --SNR,
--no-ctf = --no_ctf, --no-circle-crop = --no_circle_crop, --taper, --cutoff-fraction =
--cutoff_fract, --output-dir = --o; --write-intermediates also writes RELION's data_*.mrc,
weight_*.mrc and *_full.mrc.

examples:
  cd my_relion_project
  cryoprocs reconstruct --particles particles.star --tomograms tomograms.star \\
      --box-size 128 --bin 2 --sym C6 --output-dir Reconstruct/job020/ --threads 2
  cryoprocs reconstruct --particles P/Refine3D/job030/run_data.star \\
      --tomograms P/tomograms.star --project-dir P --box-size 256 --crop-size 192 \\
      --snr 0.1 --output-dir P/Reconstruct/job031/
"""
import argparse
from ..constants import DEFAULT_SYMMETRY

HELP = "RELION 5 subtomogram-average reconstruction (half maps, FSC)"


def add_arguments(p):
    p.add_argument("--particles", required=True, metavar="STAR",
                   help="RELION 5 particles.star (coordinates, rlnAngleRot/Tilt/Psi, "
                        "rlnRandomSubset)")
    p.add_argument("--tomograms", required=True, metavar="STAR",
                   help="RELION 5 tomograms.star (data_global with the tilt-series STAR files)")
    p.add_argument("--box-size", type=int, required=True, metavar="B",
                   help="binned box size in px (RELION --b), even")
    p.add_argument("--crop-size", type=int, default=-1, metavar="C",
                   help="output map size in px (RELION --crop; default: the box size)")
    p.add_argument("--bin", type=float, default=1.0, metavar="N",
                   help="binning factor (default 1)")
    p.add_argument("--sym", default=DEFAULT_SYMMETRY, metavar="G",
                   help="point group: Cn, Dn, T, O, I or I1..I4 in RELION's conventions "
                        "(default C1)")
    p.add_argument("--snr", type=float, default=-1.0, metavar="S",
                   help="Wiener filter: divide by weight + 1/S; <= 0 uses RELION's heuristic "
                        "(default)")
    p.add_argument("--no-ctf", action="store_true",
                   help="no CTF or dose weighting (weights 1)")
    p.add_argument("--no-circle-crop", action="store_true",
                   help="do not crop the tilt-image boxes to a soft circle before insertion")
    p.add_argument("--max-dose", type=float, default=-1.0, metavar="D",
                   help="ignore tilts with a pre-exposure above D e/A^2 (default: all)")
    p.add_argument("--cutoff-fraction", type=float, default=0.01, metavar="F",
                   help="ignore frequencies where the dose weight is below F (RELION "
                        "--cutoff_fract, default 0.01)")
    p.add_argument("--taper", type=float, default=10.0, metavar="PX",
                   help="soft spherical edge of the output maps in px (default 10)")
    p.add_argument("--dont-apply-offsets", action="store_true",
                   help="ignore rlnOriginX/Y/ZAngst")
    p.add_argument("--no-ic", action="store_true", help="do not invert the contrast")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="output folder")
    p.add_argument("--project-dir", metavar="P", default=None,
                   help="RELION project directory: paths inside the STAR files are relative to "
                        "it (default: the current directory)")
    p.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace maps made from other inputs or settings (partial sums of "
                        "unchanged tilt series are still reused)")
    p.add_argument("--write-intermediates", action="store_true",
                   help="also write data_*.mrc, weight_*.mrc (and *_full.mrc when cropping) "
                        "as RELION does")
    p.add_argument("--backend", choices=("auto", "numba", "numpy"), default="auto",
                   help="backprojection implementation (default: numba when installed)")
    # protocol use (hidden): backproject only this tilt series into DIR/partial/ (its
    # partial sums, written atomically); the maps come from a later run without it
    p.add_argument("--tilt-series", metavar="NAME", help=argparse.SUPPRESS)


def run(args):
    import time

    from ..pipelines.reconstruct import ReconstructJob

    settings = settings_from_args(args)
    t0 = time.time()
    job = ReconstructJob(args.particles, args.tomograms, args.output_dir, settings,
                         project_dir=args.project_dir, backend=args.backend)
    if args.tilt_series:
        return _backproject_one(job, args.tilt_series, args.threads, t0)
    if not args.overwrite:
        conflict = job.existing_outputs_conflict()
        if conflict:
            raise FileExistsError(conflict)
    # partial sums of unchanged tilt series are always reused; --overwrite only permits
    # replacing maps made from other inputs or settings
    res = job.run(threads=args.threads,
                  write_intermediates=args.write_intermediates)
    if res["unknown_tomograms"]:
        print("warning: particles of tomograms absent from %s were ignored: %s"
              % (args.tomograms, ", ".join(res["unknown_tomograms"])))
    if res["skipped"]:
        print("warning: %d particle%s skipped: no tilt with the particle at least %g px from "
              "the image edges%s" % (res["skipped"], "s" if res["skipped"] > 1 else "",
                                     settings.radius,
                                     " and pre-exposure <= %g e/A^2" % settings.max_dose
                                     if settings.max_dose > 0 else ""))
    if not job.has_halves:
        print("warning: no rlnRandomSubset column: only merged.mrc is written (no FSC)")
    if res["resolution"] is not None:
        print("FSC 0.143 resolution: %s%.2f A" % ("<= " if res["resolution_at_nyquist"]
                                                  else "", res["resolution"]))
    print("reconstructed %d particles (%d skipped, %d tilt images) from %d tilt series at "
          "%.3f A/px, box %d%s, %s, in %.1f s -> %s"
          % (res["used"], res["skipped"], res["slices"], len(job.tomogram_order),
             res["pixel_size"], settings.box,
             " (crop %d)" % settings.crop if settings.crop < settings.box else "",
             settings.symmetry, time.time() - t0, job.output_dir))
    return 0


def settings_from_args(args):
    """:class:`~cryoprocs.pipelines.reconstruct.ReconstructSettings` of parsed arguments."""
    from ..pipelines.reconstruct import ReconstructSettings
    return ReconstructSettings(box=args.box_size, crop=args.crop_size, binning=args.bin,
                               symmetry=args.sym, snr=args.snr, do_ctf=not args.no_ctf,
                               circle_crop=not args.no_circle_crop, max_dose=args.max_dose,
                               cutoff_fraction=args.cutoff_fraction, taper=args.taper,
                               apply_offsets=not args.dont_apply_offsets,
                               invert_contrast=not args.no_ic)


def args_from_settings(settings):
    """Command-line options that make :func:`settings_from_args` give ``settings``: how
    ProtCryoprocsReconstructSubtomoAverage turns its form into a command line."""
    s = settings
    args = ["--box-size", str(s.box), "--crop-size", str(s.crop), "--bin", repr(s.binning),
            "--sym", str(s.symmetry), "--snr", repr(s.snr), "--max-dose", repr(s.max_dose),
            "--cutoff-fraction", repr(float(s.cutoff_fraction)), "--taper", repr(float(s.taper))]
    flags = (("--no-ctf", not s.do_ctf), ("--no-circle-crop", not s.circle_crop),
             ("--dont-apply-offsets", not s.apply_offsets), ("--no-ic", not s.invert_contrast))
    return args + [flag for flag, on in flags if on]


def _backproject_one(job, name, threads, t0):
    """--tilt-series: the partial sums of one tilt series (reused when already saved)."""
    import time
    if name not in job.tomogram_order:
        raise ValueError("--tilt-series %s: no particle of %s belongs to it (tilt series "
                         "with particles: %s)" % (name, job.particles_star,
                                                  ", ".join(job.tomogram_order[:10])))
    res = job.accumulate_tilt_series(name, threads=max(1, threads))
    print("%s: %d particles backprojected (%d tilt images), %d without a visible tilt, in "
          "%.1f s -> %s" % (name, res.used, res.slices, res.skipped, time.time() - t0,
                            job.partial_file(name)))
    return 0
