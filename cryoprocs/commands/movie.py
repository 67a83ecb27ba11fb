"""Turn tomograms, volumes and tilt stacks (MRC) into movies, one per file.

A drop-in for mrc2movie (its flag names, defaults and frames: global min/max to 8 bit with
truncation, CLAHE clip 2.0 on an 8x8 tile grid, forward-backward playback of 2n-2 frames,
30 fps), but H.264 MP4 by default, streamed (memory stays near one frame plus the
memory-mapped input), and an encoder that cannot be opened is an error, never a "Saved".

INPUT is an MRC file, an OME-Zarr image (a .zarr folder or an https:// / s3:// URL; with
--bin N a stored level binned N times is read instead of level 0 when there is one) or a
folder: every .mrc/.mrcs/.rec/.st/.ali/.map file (and .zarr image) in it becomes
OUTPUT_DIR/<name>.mp4 (.avi for MJPG and other OpenCV fourccs, .gif, or <name>_frames/ for
PNG). Existing outputs are skipped unless --overwrite, so an interrupted batch resumes.

Slice selection (0-based slices along the slicing axis):
  --discard_range START END  KEEPS slices START..END-1, exactly as mrc2movie's code does
                             (its README says it discards them); --keep_range is the same
                             option under an honest name.
  --discard_percentage A B   discards the fractions A at the start and B at the end
                             (0 <= A, B < 1, e.g. 0.1 0.1; mrc2movie's semantics).

examples:
  cryoprocs movie tomo.mrc movies/                       # H.264 MP4, mrc2movie frames
  cryoprocs movie tomograms/ movies/ --codec MJPG        # mrc2movie's MJPG AVI output
  cryoprocs movie tomo.mrc movies/ --bin 2 --percentile 0.1 99.9 --label --scale_bar
  cryoprocs movie TS_01.st movies/ --tilt_angles TS_01.tlt --label --playback forward
"""
import argparse
import copy
import json
import os

from . import add_nonfinite_argument, nonfinite_args, nonfinite_policy

HELP = "tomograms / tilt stacks to MP4, AVI (MJPG), GIF or PNG frames (mrc2movie flags)"

INPUT_EXTENSIONS = (".mrc", ".mrcs", ".rec", ".st", ".ali", ".map")

#: --codec values (case-insensitive) -> (format, OpenCV fourcc)
CODECS = {"h264": ("mp4", None), "avc1": ("mp4", None), "x264": ("mp4", None),
          "mp4": ("mp4", None), "mjpg": ("avi", "MJPG"), "gif": ("gif", None),
          "png": ("png", None)}


def add_arguments(p):
    p.add_argument("input", metavar="INPUT", help="MRC file, or a folder of MRC files (batch)")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder for the movies")
    g = p.add_argument_group("mrc2movie options (same names and defaults)")
    g.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    g.add_argument("--clip_limit", "--clip-limit", type=float, default=2.0,
                   help="CLAHE clip limit (default 2.0)")
    g.add_argument("--tile_grid_size", "--tile-grid-size", type=int, default=8,
                   help="CLAHE grid of N x N tiles, not a tile size in px (default 8)")
    g.add_argument("--codec", default="h264",
                   help="h264 (MP4, default), MJPG (AVI, mrc2movie's default), gif, png, or "
                        "another OpenCV fourcc such as XVID (AVI); avc1/H264 mean MP4 H.264")
    g.add_argument("--playback", choices=("forward", "forward-backward"),
                   default="forward-backward",
                   help="forward-backward (2n-2 frames, loops seamlessly; default) or forward")
    g.add_argument("--discard_range", "--discard-range", "--keep_range", "--keep-range",
                     dest="keep_range", nargs=2, type=int, metavar=("START", "END"),
                     help="KEEP slices START..END-1 (mrc2movie's --discard_range keeps them "
                          "too, whatever its README says)")
    g.add_argument("--discard_percentage", "--discard-percentage", nargs=2, type=float,
                   metavar=("A", "B"),
                   help="discard the fraction A of the slices at the start and B at the end "
                        "(0 <= A, B < 1, e.g. 0.1 0.1); ignored with --discard_range")
    g.add_argument("--png", action="store_true",
                   help="also write the frames as PNG files in OUTPUT_DIR/<name>_frames/")
    n = p.add_argument_group("cryoprocs options")
    n.add_argument("--axis", choices=("z", "y", "x"), default="z",
                   help="slicing axis of volumes (default z)")
    n.add_argument("--slab", type=int, default=1,
                   help="average N neighbouring slices per frame (default 1)")
    n.add_argument("--bin", dest="binning", type=int, default=1,
                   help="average N x N pixel blocks (default 1; 2 is a good choice above "
                        "1024 px for MP4)")
    n.add_argument("--max_width", "--max-width", type=int, default=0,
                   help="shrink wider frames to this width in px (default 0: no limit)")
    n.add_argument("--percentile", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="contrast window from these percentiles (e.g. 0.1 99.9), robust to "
                        "gold beads; default: global min/max as mrc2movie")
    n.add_argument("--no_clahe", "--no-clahe", action="store_true", help="skip CLAHE")
    n.add_argument("--invert", action="store_true", help="invert the contrast")
    n.add_argument("--label", action="store_true",
                   help="write the slice number (or tilt angle with --tilt_angles) on frames")
    n.add_argument("--scale_bar", "--scale-bar", action="store_true",
                   help="draw a scale bar in nm (needs the pixel size)")
    n.add_argument("--pixel_size", "--pixel-size", type=float, default=None,
                   help="pixel size in A (default: the MRC header)")
    n.add_argument("--tilt_angles", "--tilt-angles", metavar="TLT",
                   help="tilt angles (IMOD .tlt/.rawtlt, one per line) of a single tilt stack "
                        "INPUT: frames are shown in tilt-angle order and --label writes angles")
    n.add_argument("--order", choices=("angle", "file"), default="angle",
                   help="with --tilt_angles: tilt-angle order (default) or the file's order "
                        "(e.g. acquisition order)")
    n.add_argument("--crf", type=int, default=23, help="x264 constant rate factor (default 23)")
    n.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    n.add_argument("--threads", type=int, default=0,
                   help="encoder and OpenCV threads (default 0: automatic)")
    n.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_nonfinite_argument(n)
    # protocol use (hidden): INPUT is a JSON frame list {"entries": [[path, 0-based index or
    # null], ...], "angles": [...]} (a tilt series' images in frame order); the movie's name;
    # the movie description (JSON, written last) and its central frame (PNG)
    p.add_argument("--frame-list", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--info", metavar="JSON", help=argparse.SUPPRESS)
    p.add_argument("--central-png", metavar="PNG", help=argparse.SUPPRESS)


def _codec(value):
    key = value.lower()
    if key in CODECS:
        return CODECS[key]
    if len(value) == 4:
        return "avi", value
    raise ValueError("--codec %r: use h264, MJPG, gif, png or a 4-character OpenCV fourcc"
                     % value)


def _inputs(path):
    from ..convert.images import is_image_store
    if is_image_store(path):                           # one OME-Zarr image (local or URL)
        if not path.lower().startswith(("http", "s3:", "gs:")) and not os.path.exists(path):
            raise FileNotFoundError("input %s does not exist" % path)
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(INPUT_EXTENSIONS)
                       and os.path.isfile(os.path.join(path, f))
                       or f.lower().endswith(".zarr"))
        if not files:
            raise FileNotFoundError("no MRC file (%s) in %s"
                                    % (", ".join(INPUT_EXTENSIONS), path))
        return files
    if not os.path.exists(path):
        raise FileNotFoundError("input %s does not exist" % path)
    return [path]


def _source(path, args):
    from ..pipelines.movie import StackSource, VolumeSource, read_tilt_angles
    from ..convert.images import image_info

    if args.frame_list:
        entries, angles = read_frame_list(path)
        return StackSource(entries, angles, args.pixel_size, nonfinite=nonfinite_policy(args))
    if not args.tilt_angles:
        return VolumeSource(path, args.axis, args.pixel_size, binning=args.binning,
                            nonfinite=nonfinite_policy(args))
    angles = read_tilt_angles(args.tilt_angles)
    n = image_info(path).shape[0]
    if len(angles) != n:
        raise ValueError("%s lists %d tilt angles but %s holds %d images"
                         % (args.tilt_angles, len(angles), path, n))
    order = sorted(range(n), key=lambda i: angles[i]) if args.order == "angle" else range(n)
    return StackSource([(path, i) for i in order], [angles[i] for i in order],
                       args.pixel_size, nonfinite=nonfinite_policy(args))


def run(args):
    from tqdm import tqdm

    from ..convert.paths import same_file
    from ..pipelines.movie import export_movie, movie_path

    fmt = _codec(args.codec)[0]
    settings = settings_from_args(args)
    files = _inputs(args.input)
    if (args.name or args.info or args.central_png or args.frame_list) and len(files) != 1:
        raise ValueError("--name, --info, --central-png and --frame-list need a single INPUT")
    if args.tilt_angles and len(files) != 1:
        raise ValueError("--tilt_angles needs a single tilt stack as INPUT, not a folder of "
                         "%d files" % len(files))
    if args.tilt_angles and args.axis != "z":
        raise ValueError("a tilt stack is shown image by image: --axis must be z")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise NotADirectoryError("OUTPUT_DIR %s is a file, not a folder" % args.output_dir)
    _check_protocol_outputs(args, files)
    if args.threads > 0:
        import cv2
        cv2.setNumThreads(args.threads)
    # the output folder is created with the first movie's claim (export_movie), after every
    # option was checked, and removed again if that movie fails
    failed, written, skipped = [], [], []
    single = len(files) == 1
    bar = tqdm(files, desc="movies", unit="file", disable=True if single else None)
    for path in bar:
        stem = args.name or os.path.splitext(os.path.basename(path.rstrip("/")))[0]
        out = movie_path(args.output_dir, stem, fmt)
        for label, p in (("input", path), ("--tilt_angles", args.tilt_angles)):
            if p and os.path.exists(out) and same_file(out, p):
                raise ValueError("the movie %s would replace the %s %s; choose another "
                                 "OUTPUT_DIR" % (out, label, p))
        if os.path.exists(out) and not args.overwrite:
            skipped.append(out)
            tqdm.write("%s exists, skipped (use --overwrite to replace it)" % out)
            continue
        frames_bar = tqdm(desc=stem, unit="frame", disable=None if single else True,
                          leave=False)

        def progress(done, total, b=frames_bar):
            b.total = total
            b.update(done - b.n)

        source = None
        try:
            source = _source(path, args)
            lb = getattr(source, "level_binning", 1)
            if lb > 1:                       # a stored OME-Zarr level is already binned
                tqdm.write("%s: reading the stored level binned %dx (no further binning)"
                           % (path, lb))
            run_settings = settings
            if lb > 1:
                run_settings = copy.copy(settings)
                run_settings.binning = max(1, settings.binning // lb)
            info = export_movie(source, out, run_settings, threads=args.threads,
                                progress=progress)
            _write_protocol_outputs(args, info, stem)
            written.append(info)
            tqdm.write("wrote %s" % info.summary_line())
        except (ValueError, OSError) as exc:
            if single:
                raise
            from ..cli import error_message
            failed.append((path, exc))
            tqdm.write("error: %s: %s" % (path, error_message(exc)))
        finally:
            frames_bar.close()
            if source is not None:
                source.close()
    if not single:
        print("%d movie(s) written, %d skipped, %d failed (%s)"
              % (len(written), len(skipped), len(failed), settings.describe()))
    return 2 if failed else 0


def settings_from_args(args):
    """:class:`~cryoprocs.pipelines.movie.MovieSettings` of parsed arguments."""
    from ..pipelines.movie import MovieSettings
    fmt, fourcc = _codec(args.codec)
    return MovieSettings(
        format=fmt, fps=args.fps, playback=args.playback, keep_range=args.keep_range,
        discard_fraction=args.discard_percentage, axis=args.axis, slab=args.slab,
        binning=args.binning, max_width=args.max_width,
        window="percentile" if args.percentile else "minmax",
        percentiles=args.percentile or (0.1, 99.9), clahe=not args.no_clahe,
        clip_limit=args.clip_limit, tile_grid_size=args.tile_grid_size, invert=args.invert,
        label=args.label, scale_bar=args.scale_bar, crf=args.crf, preset=args.preset,
        fourcc=fourcc or "MJPG", png_frames=args.png)


def args_from_settings(settings, nonfinite="error"):
    """Command-line options that make :func:`settings_from_args` give ``settings`` (and
    :func:`~cryoprocs.commands.nonfinite_policy` give ``nonfinite``): how
    ProtCryoprocsExportMovie turns its form into a command line (floats by ``repr``)."""
    s = settings
    codec = {"mp4": "h264", "gif": "gif", "png": "png", "avi": s.fourcc}[s.format]
    args = ["--codec", codec, "--fps", repr(s.fps), "--playback", s.playback,
            "--axis", s.axis, "--slab", str(s.slab), "--bin", str(s.binning),
            "--max_width", str(s.max_width), "--clip_limit", repr(s.clip_limit),
            "--tile_grid_size", str(s.tile_grid_size), "--crf", str(s.crf),
            "--preset", s.preset]
    if s.keep_range is not None:
        args += ["--keep_range"] + [str(v) for v in s.keep_range]
    elif s.discard_fraction is not None:
        args += ["--discard_percentage"] + [repr(v) for v in s.discard_fraction]
    if s.window == "percentile":
        args += ["--percentile"] + [repr(v) for v in s.percentiles]
    flags = (("--no_clahe", not s.clahe), ("--invert", s.invert), ("--label", s.label),
             ("--scale_bar", s.scale_bar), ("--png", s.png_frames))
    return args + [flag for flag, on in flags if on] + nonfinite_args(nonfinite)


def read_frame_list(path):
    """``(entries, angles)`` of a --frame-list JSON file (``{"entries": [[path, 0-based index
    or null], ...], "angles": [...]}``).

    Raises
    ------
    ValueError
        not such a file (the message names it).
    """
    try:
        with open(path) as fh:
            frames = json.load(fh)
        entries = [(str(p), None if i is None else int(i)) for p, i in frames["entries"]]
        angles = frames.get("angles")
        angles = None if angles is None else [float(a) for a in angles]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError("%s is not a frame list ({\"entries\": [[path, index], ...], "
                         "\"angles\": [...]}): %s" % (path, exc)) from None
    return entries, angles


def _check_protocol_outputs(args, files):
    """Path checks and claims of the hidden protocol outputs (--info, --central-png) and of
    the images a --frame-list names."""
    from ..convert.paths import check_io
    inputs = [("input", f) for f in files] + [("--tilt_angles", args.tilt_angles)]
    if args.frame_list:
        entries, _ = read_frame_list(files[0])
        inputs += [("image", p) for p in sorted({p for p, _ in entries})]
    check_io(inputs=inputs, outputs=[("--info", args.info), ("--central-png", args.central_png)],
             overwrite=args.overwrite, claim=True)


def _write_protocol_outputs(args, info, stem):
    """The central frame (--central-png) and the movie description (--info, last)."""
    from ..convert.mrc import atomic_output
    if args.central_png and info.central is not None:
        import cv2
        ok, buf = cv2.imencode(".png", info.central)
        if not ok:
            raise ValueError("could not encode the central frame as PNG")
        with atomic_output(args.central_png) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(buf.tobytes())
    if args.info:
        with atomic_output(args.info) as tmp:
            with open(tmp, "w") as fh:
                json.dump(dict(info, name=stem), fh, indent=1)
