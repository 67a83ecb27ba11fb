"""Write particles (a RELION particles STAR file) into a copick project as picks.

The particles of each rlnTomoName become the picks of the copick run of that name, of the
object, user and session given (copick 1.2 API; the project's JSON config). Positions are
written in Angstrom from the centre of the tomogram's first voxel (RELION's decentred
position, rlnOrigin*Angst folded in, times the pixel size); orientations are the rotation
A_subtomogram . A_particle of the RELION angles, which is what copick's 4x4 transforms hold
(object to tomogram); rlnLCCmax, when present, is the score.

Coordinates: rlnCenteredCoordinateX/Y/ZAngst (RELION 5: give --tomograms, whose
rlnTomoSizeX/Y/Z place the tomogram centre) or rlnCoordinateX/Y/Z in pixels of the optics
group's rlnTomoTiltSeriesPixelSize (or --pixel-size). Every run, the object and the absence
of picks of this object/user/session are checked before anything is written; existing picks
are replaced only with --overwrite.

examples:
  cryoprocs copick-export --particles Extract/job020/particles.star --tomograms tomograms.star \\
      --config copick.json --object ribosome --user cryoprocs --session 1
  cryoprocs copick-export --particles picks.star --pixel-size 10 --config copick.json \\
      --object ribosome --user tm --session 0 --create-runs
"""
HELP = "write RELION particles into a copick project as picks (object/user/session)"


def add_arguments(p):
    p.add_argument("--particles", required=True, help="RELION particles STAR file")
    p.add_argument("--tomograms", default=None,
                   help="tomograms.star (needed for centred coordinates: rlnTomoSizeX/Y/Z)")
    p.add_argument("--pixel-size", type=float, default=None,
                   help="A per coordinate pixel (default: the optics table's "
                        "rlnTomoTiltSeriesPixelSize)")
    p.add_argument("--config", required=True, help="copick project config (JSON)")
    p.add_argument("--object", required=True, help="copick pickable object name")
    p.add_argument("--user", default="cryoprocs", help="copick user id (default cryoprocs)")
    p.add_argument("--session", default="1",
                   help="copick session id (default 1; \"0\" marks picks made by a tool)")
    p.add_argument("--create-runs", action="store_true",
                   help="create copick runs missing from the project (default: an error)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing picks of this object, user and session")


def run(args):
    from ..convert.paths import check_io
    from ..pipelines.copick import export_to_copick
    check_io(inputs=[("particles", args.particles), ("tomograms", args.tomograms),
                     ("config", args.config)])
    written = export_to_copick(args.particles, args.config, args.object, args.user,
                               args.session, tomograms_star=args.tomograms,
                               pixel_size=args.pixel_size, overwrite=args.overwrite,
                               create_runs=args.create_runs)
    for run_name, n, path in written:
        print("%s: %d picks of %s (%s/%s) -> %s" % (run_name, n, args.object, args.user,
                                                     args.session, path))
    print("wrote %d picks in %d runs of %s" % (sum(w[1] for w in written), len(written),
                                               args.config))
    return 0
