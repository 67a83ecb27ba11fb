"""Read the picks of a copick project into a RELION 5 particles STAR file.

Picks of the chosen objects (all must exist in the project), users and sessions (empty: all)
of the chosen runs (empty: all) become rows of OUTPUT_DIR/particles.star: rlnTomoName (the
run), rlnCenteredCoordinateX/Y/ZAngst about the centre of the run's tomogram of
--tomo-type at --voxel-spacing (RELION's rule, size/2), rlnAngleRot/Tilt/Psi of the
copick rotation (object to tomogram, equal to RELION's Euler matrix), rlnLCCmax (score)
and rlnCopickObject/User/Session. OUTPUT_DIR/tomograms.tsv lists each run's tomogram (its
OME-Zarr location, usable by every cryoprocs command), size and voxel size; copy one to MRC
with `cryoprocs convert`.

example:
  cryoprocs copick-import --config copick.json --voxel-spacing 10 --tomo-type wbp \\
      --objects ribosome --output-dir copick_picks/
"""
HELP = "copick picks to a RELION 5 particles STAR file (and the list of tomograms)"


def add_arguments(p):
    p.add_argument("--config", required=True, help="copick project config (JSON)")
    p.add_argument("--voxel-spacing", type=float, required=True,
                   help="voxel spacing (A) of the tomograms the picks refer to")
    p.add_argument("--tomo-type", default="wbp", help="tomogram type (default wbp)")
    p.add_argument("--objects", required=True, help="pickable object names (comma separated)")
    p.add_argument("--users", default="", help="user ids (comma separated; default all)")
    p.add_argument("--sessions", default="", help="session ids (comma separated; default all)")
    p.add_argument("--runs", default="", help="run names (comma separated; default all)")
    p.add_argument("--output-dir", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args):
    from ..convert.paths import check_io
    from ..pipelines.copick import import_from_copick
    check_io(inputs=[("config", args.config)])
    pfile, n, tomos = import_from_copick(args.config, args.output_dir, args.voxel_spacing,
                                         args.tomo_type, args.objects, args.users,
                                         args.sessions, args.runs, overwrite=args.overwrite)
    print("wrote %s: %d particles in %d runs (tomograms: %s)"
          % (pfile, n, len(tomos), ", ".join(sorted(tomos))))
    return 0
