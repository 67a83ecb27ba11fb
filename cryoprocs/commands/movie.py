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

Playback as mrc2movie 0.2.0: --playback pingpong (= forward-backward), --pause N holds
the last and first frames N more frames, --cycles N repeats; --start S --end E keep slices
S..E INCLUDED (0-based; --end 0 = the last slice), mrc2movie 0.2.0's flags.

Particles (--particles FILE, one tomogram file as INPUT, or a folder):
  drawn as the circle of the true cross-section sqrt(R^2 - dz^2) of a sphere of radius R on
  every slice with |dz| < R (--overlay-style outline), filled (filled), or as mrc2movie
  0.2.0's red discs of radius R (1 - |dz|/R) (mrc2movie). R = --particle-radius (px, or Å
  with a unit: 150A, 15nm), default half of --box-size, else 10 px (3 px, mrc2movie's
  --psize, in mrc2movie style). They move with --bin, --upscale, --max_width and --axis.
  Coordinate conventions (all end as 0-based voxel indices, voxel centres at integers,
  x = MRC column, y = MRC row, z = section):
    .mod (IMOD model) and x y z text (mrc2movie -p: one point per line, spaces or commas,
        # comments; what IMOD model2point writes): IMOD model coordinates, X and Y from the
        corner of the first pixel (its centre is 0.5), Z = section (its centre):
        voxel = (x - 0.5, y - 0.5, z); mrc2movie's int(x) is the pixel holding the point.
    CSV with a header naming x,y,z (cryoprocs pick; extra columns kept): 0-based voxel
        centres, as they are.
    RELION 5 particles.star: rlnCenteredCoordinateX/Y/ZAngst = Å from the tomogram centre:
        voxel = c / pixel size + size / 2, minus rlnOriginX/Y/ZAngst / pixel size (rotated
        by the subtomogram angles, as RELION); pixel size from --pixel_size or the MRC
        header, size from the MRC. RELION 4 rlnCoordinateX/Y/Z: tilt-series px scaled by
        rlnTomoTiltSeriesPixelSize / pixel size.
    STOPGAP STAR (data_stopgap_motivelist) and EM motive lists (cryoCAT/TOM .em): 1-based
        voxels: voxel = orig + shift - 1.
  Files naming several tomograms (rlnTomoName, tomo_num, tomo_id, a CSV tomo column) are
  matched to the input file's name, or to --tomo-name.

Coordinate checker (--tomograms tomograms.star [--particles particles.star]): one movie per
tilt series of a RELION 5 project, the raw tilt images in tilt-angle (--order angle), STAR
row (file) or pre-exposure (dose) order, each particle drawn where extraction projects it
(RELION 5 geometry: the same positions, offsets and projection matrices as
cryoprocs extract). Circles in --flag-color (red) mark frames where the particle's box
(--box-size px, default 2R) leaves the image or the pre-exposure exceeds --max-dose:
the frames extraction would leave out. Paths in the STAR files are relative to
--project-dir (default: the current directory if they resolve from it, else the folder of
tomograms.star or its parents).

examples:
  cryoprocs movie tomo.mrc movies/                       # H.264 MP4, mrc2movie frames
  cryoprocs movie tomograms/ movies/ --codec MJPG        # mrc2movie's MJPG AVI output
  cryoprocs movie tomo.mrc movies/ --bin 2 --percentile 0.1 99.9 --label --scale_bar
  cryoprocs movie TS_01.st movies/ --tilt_angles TS_01.tlt --label --playback forward
  cryoprocs movie TS_01.mrc movies/ --particles TS_01_picks.csv --particle-radius 80A \
      --color-by score --label
  cryoprocs movie TS_01.mrc movies/ -i TS_01.mod --overlay-style mrc2movie --codec MJPG \
      --playback pingpong --pause 5 --cycles 2
  cryoprocs movie movies/ --tomograms tomograms.star --particles particles.star \
      --box-size 128 --max-dose 50 --label
"""
import argparse
import copy
import json
import os
from collections import namedtuple

from . import add_nonfinite_argument, nonfinite_args, nonfinite_policy

HELP = ("tomograms / tilt stacks to MP4, AVI (MJPG), GIF or PNG frames (mrc2movie flags), "
        "with particles drawn in")

INPUT_EXTENSIONS = (".mrc", ".mrcs", ".rec", ".st", ".ali", ".map")

#: --codec values (case-insensitive) -> (format, OpenCV fourcc)
CODECS = {"h264": ("mp4", None), "avc1": ("mp4", None), "x264": ("mp4", None),
          "mp4": ("mp4", None), "mjpg": ("avi", "MJPG"), "gif": ("gif", None),
          "png": ("png", None)}


class _IntermixedParser(argparse.ArgumentParser):
    """The parser of this sub-command: options may come between INPUT and OUTPUT_DIR (both
    optional positionals, since --tomograms needs only OUTPUT_DIR; argparse's own parsing
    would give the first chunk of positionals to both and refuse OUTPUT_DIR after an
    option)."""
    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def add_arguments(p):
    p.__class__ = _IntermixedParser
    p.add_argument("input", metavar="INPUT", nargs="?",
                   help="MRC file, or a folder of MRC files (batch); omitted with --tomograms")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", nargs="?", help="folder for the movies")
    g = p.add_argument_group("mrc2movie options (same names and defaults)")
    g.add_argument("-f", "--fps", type=float, default=30.0,
                   help="frames per second (default 30)")
    g.add_argument("--clip_limit", "--clip-limit", type=float, default=2.0,
                   help="CLAHE clip limit (default 2.0)")
    g.add_argument("--tile_grid_size", "--tile-grid-size", "--tile", type=int, default=8,
                   help="CLAHE grid of N x N tiles, not a tile size in px (default 8)")
    g.add_argument("--codec", default="h264",
                   help="h264 (MP4, default), MJPG (AVI, mrc2movie's default), gif, png, or "
                        "another OpenCV fourcc such as XVID (AVI); avc1/H264 mean MP4 H.264")
    g.add_argument("--playback", "--mode", choices=("forward", "forward-backward", "pingpong"),
                   default="forward-backward",
                   help="forward-backward (2n-2 frames, loops seamlessly; default; pingpong is "
                        "mrc2movie 0.2.0's name for it) or forward")
    g.add_argument("--pause", type=int, default=0,
                   help="hold the last (and, forward-backward, the first) frame N more frames "
                        "(mrc2movie 0.2.0; default 0)")
    g.add_argument("--cycles", type=int, default=1,
                   help="repeat the playback N times (mrc2movie 0.2.0; default 1)")
    g.add_argument("--start", type=int, default=None,
                   help="first kept slice, 0-based (mrc2movie 0.2.0; with --end)")
    g.add_argument("--end", type=int, default=None,
                   help="last kept slice, INCLUDED, 0 = the last one (mrc2movie 0.2.0)")
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
    n.add_argument("-b", "--bin", dest="binning", type=int, default=1,
                   help="average N x N pixel blocks (default 1; 2 is a good choice above "
                        "1024 px for MP4)")
    n.add_argument("--upscale", type=int, default=1,
                   help="enlarge frames N times (bicubic, after binning; default 1), e.g. for "
                        "small binned tomograms with particles drawn")
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
    n.add_argument("--order", choices=("angle", "file", "dose"), default="angle",
                   help="with --tilt_angles or --tomograms: tilt-angle order (default), the "
                        "file's (STAR rows') order, or pre-exposure order (--tomograms: the "
                        "acquisition order)")
    n.add_argument("--jpeg_quality", "--jpeg-quality", type=int, default=90,
                   help="JPEG quality of MJPG frames (default 90)")
    n.add_argument("--crf", type=int, default=23, help="x264 constant rate factor (default 23)")
    n.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    n.add_argument("--threads", type=int, default=0,
                   help="encoder and OpenCV threads; frames are rendered in up to 2 of them "
                        "(default 0: automatic)")
    n.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_nonfinite_argument(n)
    _particle_arguments(p)
    _protocol_arguments(p)


def _protocol_arguments(p):
    """Hidden options of ExportMovie's commands: INPUT is a JSON frame list {"entries":
    [[path, 0-based index or null], ...], "angles": [...]} (a tilt series' images in frame
    order); the movie's name; the movie description (JSON, written last) and its central
    frame (PNG)."""
    p.add_argument("--frame-list", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--info", metavar="JSON", help=argparse.SUPPRESS)
    p.add_argument("--central-png", metavar="PNG", help=argparse.SUPPRESS)


def _particle_arguments(p):
    o = p.add_argument_group("particles (see the coordinate conventions above)")
    o.add_argument("--particles", "-p", "-i", metavar="FILE",
                   help="particles to draw: .mod, x y z text, CSV, RELION 5 particles.star, "
                        "STOPGAP .star, EM motive list (-p and -i are mrc2movie 0.2.0's)")
    o.add_argument("--tomograms", metavar="STAR",
                   help="RELION 5 tomograms.star: movies of its tilt series, with the "
                        "particles of --particles projected (coordinate checker)")
    o.add_argument("--project-dir", "--project_dir", dest="project_dir", metavar="P",
                   help="RELION project directory of --tomograms")
    o.add_argument("--tomo-name", "--tomo_name", dest="tomo_names", action="append",
                   metavar="NAME",
                   help="tomogram (rlnTomoName, tomo_num) of the particles; with --tomograms "
                        "the tilt series to show (repeatable)")
    o.add_argument("--particle-radius", "--particle_radius", "--psize", dest="radius",
                   metavar="R",
                   help="sphere radius: px (12) or Å (150A, 15nm); default half --box-size, "
                        "else 10 px (3 in mrc2movie style)")
    o.add_argument("--box-size", "--box_size", type=float, default=0.0, metavar="B",
                   help="box size in px of the input (tilt series: unbinned px, RELION's bin x "
                        "crop; the box must lie inside the image)")
    o.add_argument("--overlay-style", "--overlay_style", default="outline",
                   choices=("outline", "filled", "mrc2movie"),
                   help="outline (default): sphere cross-sections; filled: translucent "
                        "discs; mrc2movie: mrc2movie 0.2.0's red discs")
    o.add_argument("--particle-color", "--particle-colour", dest="colour", metavar="C",
                   help="colour name, #RRGGBB or R,G,B (default green; red for mrc2movie)")
    o.add_argument("--flag-color", "--flag-colour", dest="flag_colour", default="red",
                   metavar="C", help="colour of particles outside the image or beyond "
                                     "--max-dose (tilt series; default red)")
    o.add_argument("--color-by", "--colour-by", dest="color_by", metavar="COLUMN",
                   help="colour by a column (score, class, rlnLCCmax...): a colour bar, or "
                        "distinct colours for up to 10 integer classes")
    o.add_argument("--colormap", default="viridis", help="colour map (default viridis)")
    o.add_argument("--color-range", "--colour-range", dest="color_range", nargs=2, type=float,
                   metavar=("LOW", "HIGH"), help="values mapped to the ends of the colour map")
    o.add_argument("--particle-ids", "--particle_ids", dest="ids", action="store_true",
                   help="write particle ids next to the circles")
    o.add_argument("--max-dose", "--max_dose", dest="max_dose", type=float, default=-1.0,
                   metavar="D", help="tilt series: flag frames with a pre-exposure above D "
                                     "e/A^2 (extraction's --max-dose)")
    o.add_argument("--line-width", "--line_width", dest="line_width", type=int, default=0,
                   help="circle outline width in px (default: 1 per 512 px of frame)")


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


def _source(path, args, binning=None):
    """The frames of one INPUT: a volume (an OME-Zarr one at the stored level of ``binning``
    when there is one), a tilt stack with --tilt_angles, or a --frame-list."""
    from ..convert.images import image_info
    from ..pipelines.movie import StackSource, VolumeSource, read_tilt_angles

    nonfinite = nonfinite_policy(args)
    if args.frame_list:
        entries, angles = read_frame_list(path)
        return StackSource(entries, angles, args.pixel_size, nonfinite=nonfinite)
    if not args.tilt_angles:
        return VolumeSource(path, args.axis, args.pixel_size, binning=binning,
                            nonfinite=nonfinite)
    angles = read_tilt_angles(args.tilt_angles)
    n = image_info(path).shape[0]
    if len(angles) != n:
        raise ValueError("%s lists %d tilt angles but %s holds %d images"
                         % (args.tilt_angles, len(angles), path, n))
    if args.order == "dose":
        raise ValueError("--order dose needs the pre-exposures of a RELION 5 project "
                         "(--tomograms)")
    order = sorted(range(n), key=lambda i: angles[i]) if args.order == "angle" else range(n)
    return StackSource([(path, i) for i in order], [angles[i] for i in order],
                       args.pixel_size, nonfinite=nonfinite)


def _keep_range(args, n):
    """--discard_range, or mrc2movie 0.2.0's --start/--end (end included, 0 = last)."""
    if args.start is None and args.end is None:
        return args.keep_range
    start = args.start or 0
    end = n - 1 if not args.end else min(args.end, n - 1)
    if not 0 <= start <= end:
        raise ValueError("--start %d --end %s: no slice kept of %d (0 <= START <= END)"
                         % (start, args.end, n))
    return start, end + 1


def settings_from_args(args, n=None):
    """:class:`~cryoprocs.pipelines.movie.MovieSettings` of parsed arguments; ``n`` (the
    input's slice count) resolves mrc2movie 0.2.0's --start/--end into the kept range."""
    from ..pipelines.movie import MovieSettings
    fmt, fourcc = _codec(args.codec)
    return MovieSettings(
        format=fmt, fps=args.fps, playback=args.playback,
        keep_range=_keep_range(args, n) if n else args.keep_range,
        discard_fraction=args.discard_percentage, axis=args.axis, slab=args.slab,
        binning=args.binning, max_width=args.max_width, upscale=args.upscale,
        window="percentile" if args.percentile else "minmax",
        percentiles=args.percentile or (0.1, 99.9), clahe=not args.no_clahe,
        clip_limit=args.clip_limit, tile_grid_size=args.tile_grid_size, invert=args.invert,
        label=args.label, scale_bar=args.scale_bar, crf=args.crf, preset=args.preset,
        fourcc=fourcc or "MJPG", png_frames=args.png, pause=args.pause, cycles=args.cycles,
        jpeg_quality=args.jpeg_quality)


def args_from_settings(settings, nonfinite="error"):
    """Command-line options that make :func:`settings_from_args` give ``settings`` (and
    :func:`~cryoprocs.commands.nonfinite_policy` give ``nonfinite``): how
    ProtCryoprocsExportMovie turns its form into a command line (floats by ``repr``)."""
    s = settings
    codec = {"mp4": "h264", "gif": "gif", "png": "png", "avi": s.fourcc}[s.format]
    args = ["--codec", codec, "--fps", repr(s.fps), "--playback", s.playback,
            "--pause", str(s.pause), "--cycles", str(s.cycles),
            "--axis", s.axis, "--slab", str(s.slab), "--bin", str(s.binning),
            "--upscale", str(s.upscale), "--max_width", str(s.max_width),
            "--clip_limit", repr(s.clip_limit), "--tile_grid_size", str(s.tile_grid_size),
            "--jpeg_quality", str(s.jpeg_quality), "--crf", str(s.crf), "--preset", s.preset]
    if s.keep_range is not None:
        args += ["--keep_range"] + [str(v) for v in s.keep_range]
    elif s.discard_fraction is not None:
        args += ["--discard_percentage"] + [repr(v) for v in s.discard_fraction]
    if s.window == "percentile":
        args += ["--percentile"] + [repr(v) for v in s.percentiles]
    flags = (("--no_clahe", not s.clahe), ("--invert", s.invert), ("--label", s.label),
             ("--scale_bar", s.scale_bar), ("--png", s.png_frames))
    return args + [flag for flag, on in flags if on] + nonfinite_args(nonfinite)


def _overlay_settings(args):
    from ..pipelines.movie import OverlaySettings, parse_radius
    if not args.particles:
        return None
    radius, unit = parse_radius(args.radius) if args.radius else (0.0, "px")
    return OverlaySettings(
        particles=args.particles, radius=radius, radius_unit=unit, box_size=args.box_size,
        style=args.overlay_style, colour=args.colour, flag_colour=args.flag_colour,
        color_by=args.color_by, colormap=args.colormap,
        color_range=tuple(args.color_range) if args.color_range else None, ids=args.ids,
        tomo_name=args.tomo_names[0] if args.tomo_names and not args.tomograms else None,
        max_dose=args.max_dose, thickness=args.line_width).validate()


def args_from_overlay(overlay, nonfinite="error"):
    """Command-line options that make :func:`_overlay_settings` give ``overlay`` (an
    OverlaySettings; floats by ``repr``) and :func:`~cryoprocs.commands.nonfinite_policy`
    give ``nonfinite`` (for a coordinate checker built from these options alone; the
    protocol passes its switch to :func:`args_from_settings`): the protocol's particle
    options. With --tomograms the caller adds --tomo-name itself (there it selects tilt
    series)."""
    o = overlay
    args = ["--particles", o.particles, "--box-size", repr(float(o.box_size)),
            "--overlay-style", o.style, "--flag-color", o.flag_colour,
            "--colormap", o.colormap, "--max-dose", repr(float(o.max_dose))]
    if o.radius > 0:
        args += ["--particle-radius", repr(float(o.radius)) + o.radius_unit]
    if o.colour:
        args += ["--particle-color", o.colour]
    if o.color_by:
        args += ["--color-by", o.color_by]
    if o.color_range is not None:
        args += ["--color-range"] + [repr(float(v)) for v in o.color_range]
    if o.ids:
        args.append("--particle-ids")
    if o.tomo_name:
        args += ["--tomo-name", o.tomo_name]
    if o.thickness:
        args += ["--line-width", str(o.thickness)]
    return args + nonfinite_args(nonfinite)


#: one movie to make: its name, what messages call its input, its input files
#: (``[(label, path)]``, never replaced by an output) and ``open()`` -> ``(source, overlay)``
Job = namedtuple("Job", "stem what inputs open")


def _file_jobs(args, osettings):
    """One :data:`Job` per input file."""
    from ..pipelines.movie import tomogram_overlay
    files = _inputs(args.input)
    if args.tilt_angles and len(files) != 1:
        raise ValueError("--tilt_angles needs a single tilt stack as INPUT, not a folder of "
                         "%d files" % len(files))
    if args.tilt_angles and args.axis != "z":
        raise ValueError("a tilt stack is shown image by image: --axis must be z")
    if (args.tilt_angles or args.frame_list) and osettings:
        raise ValueError("particles are projected on tilt series through their alignment: "
                         "give the RELION 5 project (--tomograms) instead of %s"
                         % ("--tilt_angles" if args.tilt_angles else "a frame list"))
    jobs = []
    for path in files:
        stem = args.name or os.path.splitext(os.path.basename(path.rstrip("/")))[0]
        inputs = [("input", path)]
        if args.frame_list:
            entries, _ = read_frame_list(path)
            inputs += [("image", p) for p in sorted({p for p, _ in entries})]

        def open_(path=path, stem=stem):
            source = _source(path, args, args.binning)
            if osettings and not source.level_isotropic:
                # particles are spheres: a stored level binned in x and y only is not used
                source.close()
                source = _source(path, args)
            try:
                overlay = tomogram_overlay(source, osettings, stem, len(files) == 1) \
                    if osettings else None
            except BaseException:
                source.close()
                raise
            return source, overlay
        jobs.append(Job(stem, path, inputs, open_))
    return jobs


def _relion_jobs(args, osettings):
    """One :data:`Job` per tilt series of the RELION 5 project (--tomograms)."""
    from ..convert.paths import safe_name
    from ..pipelines.movie import relion_tilt_series
    if args.input is not None:
        raise ValueError("with --tomograms the tilt series come from the project: give only "
                         "OUTPUT_DIR (got INPUT %s too)" % args.input)
    if args.axis != "z" or args.slab > 1:
        raise ValueError("tilt series are shown image by image: no --axis or --slab")
    jobs = []
    for item in relion_tilt_series(args.tomograms, args.particles, args.project_dir,
                                   args.tomo_names, args.order):
        def open_(item=item):
            source = item.source(args.pixel_size, nonfinite_policy(args))
            try:
                return source, item.overlay(osettings) if osettings else None
            except BaseException:
                source.close()
                raise
        jobs.append(Job(args.name or safe_name(item.name),
                        "%s (%s)" % (item.name, args.tomograms),
                        [("tilt image", p) for p in item.image_files()], open_))
    return jobs


def run(args):
    fmt = _codec(args.codec)[0]
    if args.tomograms and args.output_dir is None:
        args.input, args.output_dir = None, args.input
    if args.output_dir is None:
        raise ValueError("give INPUT and OUTPUT_DIR (or OUTPUT_DIR with --tomograms)")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise NotADirectoryError("OUTPUT_DIR %s is a file, not a folder" % args.output_dir)
    settings_from_args(args)                  # validate the options before any work
    osettings = _overlay_settings(args)
    _check_inputs(args)
    jobs = _relion_jobs(args, osettings) if args.tomograms else _file_jobs(args, osettings)
    if (args.name or args.info or args.central_png or args.frame_list) and len(jobs) != 1:
        raise ValueError("--name, --info, --central-png and --frame-list need a single movie "
                         "(got %d inputs)" % len(jobs))
    _check_protocol_outputs(args, jobs)
    if args.threads > 0:
        import cv2
        cv2.setNumThreads(args.threads)
    # the output folder is created with the first movie's claim (export_movie), after every
    # option was checked, and removed again if that movie fails
    return _run_jobs(jobs, args, fmt)


def _shared_inputs(args):
    """The input files every movie of a run reads besides its own (``[(label, path)]``)."""
    return [(label, p) for label, p in (("--tilt_angles", args.tilt_angles),
                                        ("--particles", args.particles),
                                        ("--tomograms", args.tomograms)) if p]


def _check_inputs(args):
    """The option files exist and are files (one line naming the missing one)."""
    from ..convert.paths import check_io
    check_io(inputs=_shared_inputs(args), claim=False)


def _check_movie_path(out, job, args, fmt):
    """A movie (or its PNG frames folder) never replaces one of the run's inputs, even with
    --overwrite."""
    from ..convert.paths import same_file
    from ..pipelines.movie import movie_path
    outs = [out]
    if args.png and fmt != "png":
        outs.append(movie_path(args.output_dir, job.stem, "png"))
    for o in outs:
        for label, p in job.inputs + _shared_inputs(args):
            if os.path.exists(o) and same_file(o, p):
                raise ValueError("the movie %s would replace the %s %s; choose another "
                                 "OUTPUT_DIR" % (o, label, p))


def _run_jobs(jobs, args, fmt):
    from tqdm import tqdm

    from ..pipelines.movie import movie_path

    failed, written, skipped = [], [], []
    single = len(jobs) == 1
    bar = tqdm(jobs, desc="movies", unit="file", disable=True if single else None)
    for job in bar:
        out = movie_path(args.output_dir, job.stem, fmt)
        _check_movie_path(out, job, args, fmt)
        if os.path.exists(out) and not args.overwrite:
            skipped.append(out)
            tqdm.write("%s exists, skipped (use --overwrite to replace it)" % out)
            continue
        try:
            written.append(_make_movie(job, out, args, single))
        except (ValueError, OSError) as exc:
            if single:
                raise
            from ..cli import error_message
            failed.append((job.what, exc))
            tqdm.write("error: %s: %s" % (job.what, error_message(exc)))
    if not single:
        print("%d movie(s) written, %d skipped, %d failed (%s)"
              % (len(written), len(skipped), len(failed), settings_from_args(args).describe()))
    return 2 if failed else 0


def _make_movie(job, out, args, single):
    """One movie (and the protocol's description files); returns its MovieInfo."""
    from tqdm import tqdm

    from ..pipelines.movie import export_movie

    frames_bar = tqdm(desc=job.stem, unit="frame", disable=None if single else True,
                      leave=False)

    def progress(done, total, b=frames_bar):
        b.total = total
        b.update(done - b.n)

    source = None
    try:
        source, overlay = job.open()
        settings = settings_from_args(args, source.n)
        lb = getattr(source, "level_binning", 1)
        if lb > 1:                           # a stored OME-Zarr level is already binned
            tqdm.write("%s: reading the stored level binned %dx (no further binning)"
                       % (job.what, lb))
            settings = copy.copy(settings)
            settings.binning = max(1, settings.binning // lb)
        info = export_movie(source, out, settings, threads=args.threads,
                            progress=progress, overlay=overlay,
                            render_threads=min(2, args.threads) if args.threads > 0
                            else None)
        _write_protocol_outputs(args, info, job.stem)
        tqdm.write("wrote %s" % info.summary_line())
        return info
    finally:
        frames_bar.close()
        if source is not None:
            source.close()


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


def _check_protocol_outputs(args, jobs):
    """Path checks and claims of the hidden protocol outputs (--info, --central-png) against
    every input of the run (INPUT, the images a --frame-list names, the tilt images of a
    RELION 5 project, --tilt_angles, --particles, --tomograms)."""
    from ..convert.paths import check_io
    inputs = _shared_inputs(args) + [ip for job in jobs for ip in job.inputs]
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
