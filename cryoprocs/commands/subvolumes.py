"""Cut plain 3D sub-volumes of one tomogram (hidden: the per-tomogram step of
ExtractSubtomos in 3D mode).

--coordinates is the protocol's JSON ``{tsId: {"tomogram": path, "sampling": Å/voxel,
"dims": [x, y, z], "coords": [[id, x, y, z], ...]}}`` with 0-based tomogram voxels (x = MRC
column). The sub-volumes of --tilt-series go to DIR/<tsId>/<tsId>_<id>.mrc (float32, voxel
size = tomogram voxel x --bin); what happened to each particle goes to --status (JSON,
written last). Sub-volumes already written with the same tomogram and settings are kept
(resume); others are redone.
"""
import json
import os

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


def run(args):
    from ..convert.mrc import atomic_output
    from ..pipelines.extract import SubvolumeSettings, extract_subvolumes

    with open(args.coordinates) as fh:
        data = json.load(fh)
    if args.tilt_series not in data:
        raise ValueError("--tilt-series %s is not in %s (tsIds: %s)"
                         % (args.tilt_series, args.coordinates, ", ".join(sorted(data)[:10])))
    item = data[args.tilt_series]
    settings = SubvolumeSettings(box=args.box_size, binning=args.bin,
                                 invert_contrast=args.invert, normalize=args.normalize,
                                 outside=args.outside)
    folder = os.path.join(args.output_dir, args.tilt_series)
    coords = item["coords"]
    files = [os.path.join(folder, "%s_%06d.mrc" % (args.tilt_series, c[0])) for c in coords]
    res = extract_subvolumes(item["tomogram"], [c[1:] for c in coords], files, settings,
                             voxel_size=item["sampling"], overwrite=args.overwrite,
                             fingerprint_file=os.path.join(folder, ".fingerprint.json"))
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
