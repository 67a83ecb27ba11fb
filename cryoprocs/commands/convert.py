"""Convert an image between MRC and OME-Zarr, wherever it lives.

INPUT is an MRC file, an OME-Zarr folder or an OME-Zarr URL (https://..., s3://... read
anonymously), optionally with a scale level (tomo.zarr/1, or --level / --bin). OUTPUT is
an MRC file (.mrc, .mrcs, .rec, .st, .map) or an OME-Zarr folder (.zarr, OME-NGFF 0.4, one
scale level, Blosc LZ4 chunks). The data are streamed block by block: memory stays near one
block of sections, and the output is written under a temporary name and renamed when
complete. Voxel size and origin are kept.

examples:
  cryoprocs convert https://host/TS_01.zarr TS_01.mrcs            # download level 0
  cryoprocs convert tomo.zarr tomo_bin2.mrc --bin 2                # a stored 2x level
  cryoprocs convert TS_01.mrcs TS_01.zarr --chunks 1 256 256       # tilt series to OME-Zarr
"""
HELP = "convert an image between MRC and OME-Zarr (local or URL), streamed"


def add_arguments(p):
    p.add_argument("input", metavar="INPUT", help="MRC file, OME-Zarr folder or URL")
    p.add_argument("output", metavar="OUTPUT", help="MRC file or OME-Zarr folder (*.zarr)")
    p.add_argument("--level", default=None,
                   help="OME-Zarr input: the scale level (dataset path) to read (default 0)")
    p.add_argument("--bin", type=float, default=None,
                   help="OME-Zarr input: read the stored level binned by this factor (an "
                        "error when there is none)")
    p.add_argument("--chunks", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="OME-Zarr output chunks (default 1 x 256 x 256 for stacks, "
                        "64 x 256 x 256 for volumes)")
    p.add_argument("--stack", action="store_true",
                   help="the input is a stack of images (tilt series): MRC output as a "
                        "stack, OME-Zarr chunks one image deep")
    p.add_argument("--block-mb", type=float, default=128.0,
                   help="sections read and written at once, in MB (default 128)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args):
    from ..pipelines.convert import convert_image
    res = convert_image(args.input, args.output, level=args.level, binning=args.bin,
                        chunks=args.chunks, stack=args.stack or None,
                        block_bytes=int(args.block_mb * 2 ** 20), overwrite=args.overwrite)
    print("wrote %s: %s %s, voxel size %.4g A, %.1f MB read%s"
          % (res["output"], " x ".join(str(s) for s in res["shape"][::-1]), res["dtype"],
             res["voxel_size"][0], res["bytes_read"] / 1e6,
             " (level %s)" % res["level"] if res.get("level") is not None else ""))
    return 0
