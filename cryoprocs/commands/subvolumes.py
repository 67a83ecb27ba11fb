"""Cut plain 3D sub-volumes of one tomogram (hidden: the per-tomogram step of
ExtractSubtomos in 3D mode).

--coordinates is the protocol's JSON ``{tsId: {"tomogram": path, "sampling": Å/voxel,
"dims": [x, y, z], "coords": [[id, x, y, z], ...]}}`` with 0-based tomogram voxels (x = MRC
column). The sub-volumes of --tilt-series go to DIR/<name>/<name>_<id>.mrc, <name> being
the tsId made safe for a file name (``convert.paths.safe_name``; float32, voxel size =
tomogram voxel x --bin); what happened to each particle goes to --status (JSON, written
last). Sub-volumes already written with the same tomogram and settings are kept (resume,
each checked); others are redone. The run claims DIR/<name> and --status only: the runs of
other tomograms write into DIR meanwhile.
"""
import json
import os

from . import add_nonfinite_argument, nonfinite_args, nonfinite_policy

HELP = None          # hidden: not listed by `cryoprocs --help`


def add_arguments(p):
    p.add_argument("--coordinates", required=True, metavar="JSON",
                   help="positions per tsId (see above)")
    p.add_argument("--tilt-series", required=True, metavar="TSID", help="the tomogram to cut")
    p.add_argument("--box-size", type=int, required=True, metavar="B",
                   help="output box size in px")
    p.add_argument("--bin", type=float, default=1.0, metavar="F",
                   help="output voxel / tomogram voxel (>= 1; Fourier cropping when > 1)")
    p.add_argument("--invert", action="store_true", help="multiply by -1")
    p.add_argument("--normalize", action="store_true",
                   help="background outside the sphere of radius box/2 to mean 0, std 1")
    p.add_argument("--outside", choices=("skip", "pad"), default="skip",
                   help="boxes leaving the tomogram: skip them or pad with the tomogram mean")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="output folder")
    p.add_argument("--status", required=True, metavar="JSON",
                   help="per-particle status and counts (written last)")
    p.add_argument("--overwrite", action="store_true", help="redo existing sub-volumes")
    add_nonfinite_argument(p)


def run(args):
    from ..convert import outputs
    from ..convert.mrc import atomic_output
    from ..convert.paths import check_io, safe_name, same_file
    from ..pipelines.extract import extract_subvolumes

    check_io(inputs=[("--coordinates", args.coordinates)])
    item = _read_item(args.coordinates, args.tilt_series)
    name = safe_name(args.tilt_series)
    folder = os.path.join(args.output_dir, name)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError("%s is a file, not a folder" % folder)
    outputs.claim(folder, "output folder", folder=True)
    check_io(inputs=[("--coordinates", args.coordinates), ("tomogram", item["tomogram"])],
             outputs=[("--status", args.status)], overwrite=args.overwrite)
    settings = settings_from_args(args)
    coords = item["coords"]
    files = [os.path.join(folder, "%s_%06d.mrc" % (name, c[0])) for c in coords]
    tomogram = str(item["tomogram"])
    if os.path.exists(tomogram) and any(os.path.exists(f) and same_file(f, tomogram)
                                        for f in files):
        raise ValueError("the sub-volumes in %s would replace the tomogram %s; choose another "
                         "--output-dir" % (folder, tomogram))
    res = extract_subvolumes(tomogram, [c[1:] for c in coords], files, settings,
                             voxel_size=item["sampling"], overwrite=args.overwrite,
                             fingerprint_file=os.path.join(folder, ".fingerprint.json"),
                             nonfinite=nonfinite_policy(args))
    status = {str(c[0]): s for c, s in zip(coords, res["status"])}
    counts = {k: v for k, v in res.items() if k != "status"}
    with atomic_output(args.status) as tmp:
        with open(tmp, "w") as fh:
            json.dump({"tilt_series": args.tilt_series, "status": status, "counts": counts},
                      fh)
    print("%s: %d sub-volumes written, %d already present, %d outside the tomogram (%d "
          "skipped, %d padded)" % (args.tilt_series, res["written"], res["skipped_existing"],
                                   res["outside"], res["skipped"], res["padded"]))
    return 0


def settings_from_args(args):
    """:class:`~cryoprocs.pipelines.extract.SubvolumeSettings` of parsed arguments."""
    from ..pipelines.extract import SubvolumeSettings
    return SubvolumeSettings(box=args.box_size, binning=args.bin,
                             invert_contrast=args.invert, normalize=args.normalize,
                             outside=args.outside)


def args_from_settings(settings, nonfinite="error"):
    """Command-line options that make :func:`settings_from_args` give ``settings`` (and
    :func:`~cryoprocs.commands.nonfinite_policy` give ``nonfinite``): how
    ProtCryoprocsExtractSubtomos (3D) turns its form into a command line."""
    s = settings
    args = ["--box-size", str(int(s.box)), "--bin", repr(float(s.binning)),
            "--outside", s.outside]
    args += ["--invert"] if s.invert_contrast else []
    args += ["--normalize"] if s.normalize else []
    return args + nonfinite_args(nonfinite)


def _read_item(path, tsId):
    """The entry of ``tsId`` in the --coordinates JSON (checked)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
        if tsId not in data:
            raise ValueError("--tilt-series %s is not in %s (tsIds: %s)"
                             % (tsId, path, ", ".join(sorted(data)[:10])))
        item = data[tsId]
        coords = [[int(c[0])] + [float(v) for v in c[1:4]] for c in item["coords"]]
        return {"tomogram": str(item["tomogram"]), "sampling": float(item["sampling"]),
                "coords": coords}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, IndexError,
            AttributeError) as exc:
        raise ValueError("%s is not a coordinates file of ExtractSubtomos (%s: %s)"
                         % (path, type(exc).__name__, exc)) from None
