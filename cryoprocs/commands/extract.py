"""Extract RELION 5 pseudo-subtomograms (2D tilt stacks) with RELION 5.0.1's numbers.

Reads a RELION 5 tomography project (particles.star, tomograms.star, the per-tilt-series STAR
files and the tilt stacks) and writes what ``relion_tomo_subtomo --stack2d`` writes:
DIR/Subtomograms/<tomogram>/<k>_stack2d.mrcs (visible frames only), DIR/particles.star and
DIR/optimisation_set.star, ready for relion_refine / relion_tomo_reconstruct_particle.

Paths inside the STAR files are relative to the RELION project directory (--project-dir,
default: the current directory, as RELION); output paths are written relative to it when
DIR lies inside it. A re-run after an interruption skips the stacks already written (they
are those of the same inputs and settings); stacks made from other inputs or settings are
replaced only with --overwrite.

RELION equivalents: --box-size = --b, --crop-size = --crop, --bin, --no-ctf = --no_ctf,
--no-circle-crop = --no_circle_crop, --float16, --max-dose = --max_dose,
--min-frames = --min_frames, --output-dir = --o. zarr-particle-tools (`local` mode) names are
accepted too: --particles-starfile, --tomograms-starfile, --tiltseries-relative-dir.

examples:
  cd my_relion_project
  cryoprocs extract --particles particles.star --tomograms tomograms.star \\
      --box-size 64 --bin 2 --output-dir Extract/job010/
  cryoprocs extract --particles P/particles.star --tomograms P/tomograms.star \\
      --project-dir P --box-size 128 --crop-size 96 --float16 --max-dose 50 \\
      --output-dir P/Extract/job011/ --threads 2
"""
import argparse
import json

HELP = "RELION 5 pseudo-subtomogram (2D tilt stack) extraction"


def add_arguments(p):
    p.add_argument("--particles", "--particles-starfile", dest="particles", required=True,
                   metavar="STAR",
                   help="RELION 5 particles.star (rlnCenteredCoordinate*Angst or "
                        "rlnCoordinateX/Y/Z)")
    p.add_argument("--tomograms", "--tomograms-starfile", dest="tomograms", required=True,
                   metavar="STAR",
                   help="RELION 5 tomograms.star (data_global with the tilt-series STAR files)")
    p.add_argument("--box-size", type=int, required=True, metavar="B",
                   help="binned box size in px (RELION --b), even")
    p.add_argument("--crop-size", type=int, default=-1, metavar="C",
                   help="output size in px (RELION --crop; default: the box size)")
    p.add_argument("--bin", type=float, default=1.0, metavar="N",
                   help="binning factor (default 1)")
    p.add_argument("--no-ctf", action="store_true",
                   help="no CTF premultiplication (and, as RELION, no dose weighting)")
    p.add_argument("--no-circle-crop", action="store_true",
                   help="no background subtraction and circular mask")
    p.add_argument("--float16", action="store_true",
                   help="write MRC mode 12 (RELION's float16 rounding)")
    p.add_argument("--max-dose", type=float, default=-1.0, metavar="D",
                   help="drop frames with a pre-exposure above D e/A^2 (default: keep all)")
    p.add_argument("--min-frames", type=int, default=1, metavar="F",
                   help="remove particles visible in fewer than F frames (default 1)")
    p.add_argument("--dont-apply-offsets", action="store_true",
                   help="ignore rlnOriginX/Y/ZAngst (RELION --dont_apply_offsets)")
    p.add_argument("--no-ic", action="store_true",
                   help="do not invert the contrast (RELION --no_ic)")
    p.add_argument("--output-dir", required=True, metavar="DIR",
                   help="output folder (RELION --o)")
    p.add_argument("--project-dir", "--tiltseries-relative-dir", dest="project_dir",
                   metavar="P", default=None,
                   help="RELION project directory: paths inside the STAR files are relative to "
                        "it (default: the current directory)")
    p.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace stacks made from other inputs or settings (stacks of the "
                        "same inputs and settings are always kept)")
    # protocol use (hidden): CTF premultiplication without dose weighting (a cryoprocs
    # option); extract only one tilt series (no STAR files) and write its counts to a JSON
    # result (atomically, last)
    p.add_argument("--no-dose-weighting", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tilt-series", metavar="NAME", help=argparse.SUPPRESS)
    p.add_argument("--result", metavar="JSON", help=argparse.SUPPRESS)


def run(args):
    import time

    from ..pipelines.extract import Stack2DJob

    settings = settings_from_args(args)
    t0 = time.time()
    job = Stack2DJob(args.particles, args.tomograms, args.output_dir, settings,
                     project_dir=args.project_dir)
    if args.tilt_series:
        return _extract_one(job, args, t0)
    if not args.overwrite:
        stale = job.stale_tilt_series()
        if stale:
            raise FileExistsError(
                "%s holds stacks of %s made from other inputs or settings (or not by this "
                "command); pass --overwrite to replace them or choose another output folder"
                % (job.output_dir, ", ".join(stale)))
    # stacks of this run's inputs and settings are always kept (a resume); --overwrite only
    # permits replacing the others, which the job then deletes and redoes
    counts = job.run(threads=args.threads)
    if counts["unknown_tomograms"]:
        print("warning: particles of tomograms absent from %s were ignored: %s"
              % (args.tomograms, ", ".join(counts["unknown_tomograms"])))
    removed = counts["removed"] - sum(
        int((job.parts["rlnTomoName"] == t).sum()) for t in counts["unknown_tomograms"])
    if removed:
        print("warning: %d particle%s removed: fewer than %d visible frame%s (a frame counts "
              "when the particle lies more than %g px from the image edges%s)" % (
                  removed, "s were" if removed > 1 else " was", settings.min_frames,
                  "s" if settings.min_frames > 1 else "", settings.radius,
                  " and its pre-exposure is <= %g e/A^2" % settings.max_dose
                  if settings.max_dose > 0 else ""))
    print("extracted %d particles (%d frames written, %d stacks already present) from %d "
          "tilt series in %.1f s -> %s" % (counts["kept"], counts["frames"],
                                          counts["skipped_existing"],
                                          len(job.tomogram_order), time.time() - t0,
                                          job.output_dir))
    return 0


def settings_from_args(args):
    """:class:`~cryoprocs.pipelines.extract.Stack2DSettings` of parsed arguments."""
    from ..pipelines.extract import Stack2DSettings
    return Stack2DSettings(box=args.box_size, crop=args.crop_size, binning=args.bin,
                           do_ctf=not args.no_ctf, circle_crop=not args.no_circle_crop,
                           float16=args.float16, max_dose=args.max_dose,
                           min_frames=args.min_frames, apply_offsets=not args.dont_apply_offsets,
                           invert_contrast=not args.no_ic,
                           dose_weighting=not args.no_dose_weighting)


def args_from_settings(settings):
    """Command-line options that make :func:`settings_from_args` give ``settings``: how
    ProtCryoprocsExtractSubtomos turns its form into a command line."""
    s = settings
    args = ["--box-size", str(s.box), "--crop-size", str(s.crop), "--bin", repr(s.binning),
            "--max-dose", repr(s.max_dose), "--min-frames", str(s.min_frames)]
    flags = (("--no-ctf", not s.do_ctf), ("--no-circle-crop", not s.circle_crop),
             ("--float16", s.float16), ("--dont-apply-offsets", not s.apply_offsets),
             ("--no-ic", not s.invert_contrast), ("--no-dose-weighting", not s.dose_weighting))
    return args + [flag for flag, on in flags if on]


def _extract_one(job, args, t0):
    """--tilt-series: the stacks of one tilt series (kept when already written with these
    inputs and settings), then its counts in --result."""
    import time

    from ..convert.mrc import atomic_output
    name = args.tilt_series
    if name not in job.tomogram_order:
        raise ValueError("--tilt-series %s: no particle of %s belongs to it (tilt series "
                         "with particles: %s)" % (name, job.particles_star,
                                                  ", ".join(job.tomogram_order[:10])))
    if not args.overwrite and job.is_stale(name):
        raise FileExistsError("%s holds stacks of %s made from other inputs or settings; pass "
                              "--overwrite to replace them" % (job.output_dir, name))
    res = job.extract_tilt_series(name, threads=max(1, args.threads))
    plan = job.plan(name)
    res.update(tilt_series=name, particles=int(len(plan.rows)), kept=plan.n_kept)
    if args.result:
        with atomic_output(args.result) as tmp:
            with open(tmp, "w") as fh:
                json.dump(res, fh, indent=1)
    print("%s: %d of %d particles extracted (%d stacks written, %d already present, %d "
          "frames) in %.1f s -> %s" % (name, plan.n_kept, len(plan.rows), res["written"],
                                       res["skipped_existing"], res["frames"],
                                       time.time() - t0, job.output_dir))
    return 0
