"""Apply an Xmipp-style geometric mask, or a mask file, to an MRC image, stack or volume.

Values mean exactly what the Scipion form (ApplyMask2D / ApplyMask3D) means: sizes in px,
-1 = the Xmipp default derived from the X dimension (radius, box size and outer radius =
X/2, height = X, sigma = X/6). Binary masks replace the outside by the fill value; soft
masks (gaussian, raised cosine, raised crown) multiply and ignore the fill value, as Xmipp.

examples:
  cryoprocs mask --input particles.mrcs --output masked.mrcs --geometry circular --radius 40
  cryoprocs mask --input map.mrc --output map_masked.mrc --geometry raised_cosine \\
      --inner-radius 20 --outer-radius 30
  cryoprocs mask --input map.mrc --output map_masked.mrc --mask-file mask.mrc
  cryoprocs mask --input map.mrc --output map_masked.mrc --geometry raised_cosine \\
      --inner-radius 20 --outer-radius 30 --save-mask solvent_mask.mrc
"""
import argparse
import contextlib

from . import add_nonfinite_argument, nonfinite_args, nonfinite_policy

HELP = "mask images, stacks or volumes (Xmipp semantics)"

GEOMETRIES = ("circular", "sphere", "box", "crown", "cylinder", "gaussian", "raised_cosine",
              "raised_crown")


def add_arguments(p):
    p.add_argument("--input", required=True, metavar="IN",
                   help="MRC image (.mrc), image stack (.mrcs) or volume")
    p.add_argument("--output", required=True, metavar="OUT", help="float32 MRC output")
    p.add_argument("--geometry", choices=GEOMETRIES,
                   help="mask geometry (omit with --mask-file)")
    p.add_argument("--radius", type=int, default=-1,
                   help="circular/sphere/cylinder radius in px (-1: X/2)")
    p.add_argument("--inner-radius", type=int, default=0,
                   help="crown / raised cosine / raised crown inner radius in px (0 allowed)")
    p.add_argument("--outer-radius", type=int, default=-1, help="outer radius in px (-1: X/2)")
    p.add_argument("--box-size", type=int, default=-1,
                   help="box side length in px (-1: X/2)")
    p.add_argument("--height", type=int, default=-1, help="cylinder height along Z in px (-1: X)")
    p.add_argument("--sigma", type=float, default=-1.0, help="gaussian sigma in px (-1: X/6)")
    p.add_argument("--gaussian-peak-one", action="store_true",
                   help="gaussian with peak 1 instead of Xmipp's unit integral")
    p.add_argument("--border-decay", type=int, default=0,
                   help="raised crown edge half-width in px (-1: 0)")
    p.add_argument("--center", type=int, nargs="+", metavar="D", default=None,
                   help="centre shift X Y [Z] in px from the box centre (index size//2)")
    p.add_argument("--fill", choices=("value", "min", "max", "avg", "noise"), default="value",
                   help="fill of the outside for binary masks (soft masks multiply); "
                        "min/max/avg: per-image statistics of the whole image; noise: gaussian "
                        "noise with the image's own outside mean and std")
    p.add_argument("--fill-value", type=float, default=0.0, help="value for --fill value")
    p.add_argument("--seed", type=int, default=42, help="random seed for --fill noise")
    p.add_argument("--mask-file", metavar="M",
                   help="created mask (MRC, same dimensions): the input is multiplied by it")
    p.add_argument("--save-mask", metavar="MASK",
                   help="also write the mask applied to one image/volume as a float32 MRC "
                        "with the input's voxel size (binary masks as 0/1, soft edges as "
                        "computed), e.g. a solvent mask for RELION")
    p.add_argument("--threads", type=int, default=1, help="threads for stacks")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_nonfinite_argument(p)
    # protocol use (hidden): --input is an .npz list of image/volume locations
    # (pipelines.masks.ImageSources.save) and items I0..I1-1 of it go to --output (a stack
    # of images, or one volume)
    p.add_argument("--sources", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--range", type=int, nargs=2, metavar=("I0", "I1"), help=argparse.SUPPRESS)


def run(args):
    from ..convert import outputs
    from ..pipelines.masks import mask_file

    recipe = recipe_from_args(args)
    save = _check_save_mask(args) if args.save_mask else None
    # --save-mask: the mask is written first and belongs to the output's group: a run that
    # does not finish leaves neither
    with outputs.provisional(args.output, [args.save_mask]) if save else _nothing():
        if save:
            _save_mask(args, recipe, *save)
        if args.sources:
            warnings = _mask_sources(args, recipe)
        else:
            warnings = mask_file(args.input, args.output, recipe,
                                 threads=max(1, args.threads), overwrite=args.overwrite,
                                 nonfinite=nonfinite_policy(args))
    for w in warnings:
        print("warning: %s" % w)
    print("wrote %s" % args.output)
    return 0


def recipe_from_args(args):
    """The :class:`~cryoprocs.pipelines.masks.MaskRecipe` of parsed arguments."""
    from ..pipelines.masks import MaskRecipe

    if (args.geometry is None) == (args.mask_file is None):
        raise ValueError("give exactly one of --geometry and --mask-file")
    center = tuple(args.center or ())
    if len(center) not in (0, 2, 3):
        raise ValueError("--center takes 2 (X Y) or 3 (X Y Z) values, got %d" % len(center))
    params = {}
    if args.geometry:
        names = {"circular": ("radius",), "sphere": ("radius",), "box": ("box_size",),
                 "crown": ("inner_radius", "outer_radius"),
                 "raised_cosine": ("inner_radius", "outer_radius"),
                 "raised_crown": ("inner_radius", "outer_radius", "border_decay"),
                 "cylinder": ("radius", "height"), "gaussian": ("sigma",)}[args.geometry]
        params = {n: getattr(args, n) for n in names}
    return MaskRecipe(args.geometry, params, center=center + (0,) * (3 - len(center)),
                      fill=args.fill, fill_value=args.fill_value, seed=args.seed,
                      gaussian_peak_one=args.gaussian_peak_one, mask_file=args.mask_file,
                      nonfinite=nonfinite_policy(args))


@contextlib.contextmanager
def _nothing():
    yield


def _check_save_mask(args):
    """--save-mask: the paths of both outputs checked against every input (the images a
    --sources list names included) and against each other, and both claimed, before
    anything is written. Returns ``(item shape, voxel size)`` of the mask."""
    from ..convert.paths import check_io
    from ..pipelines.masks import ImageSources, source_item_shape
    inputs = [("input", args.input), ("mask file", args.mask_file)]
    check_io(inputs=inputs, claim=False)
    if args.sources:
        sources, _, voxel_size = ImageSources.load(args.input)
        inputs += [("image file", p) for p in sources.paths]
        shape = source_item_shape(sources, args.range[0] if args.range else 0)
    else:
        from ..convert.mrc import mrc_info
        info = mrc_info(args.input)
        nz, ny, nx = info.shape
        shape = (ny, nx) if info.is_stack or nz == 1 else (nz, ny, nx)
        voxel_size = info.voxel_size
    check_io(inputs=inputs, outputs=[("output", args.output), ("--save-mask", args.save_mask)],
             overwrite=args.overwrite)
    return shape, voxel_size


def _save_mask(args, recipe, shape, voxel_size):
    """The mask of one item of the input (first item of --range with --sources)."""
    from ..pipelines.masks import save_mask
    save_mask(recipe, shape, args.save_mask, voxel_size=voxel_size, overwrite=args.overwrite)
    print("wrote %s" % args.save_mask)


def _mask_sources(args, recipe):
    """--sources: items --range I0 I1 of the location list --input into --output."""
    from ..convert.paths import check_io
    from ..pipelines.masks import ImageSources, mask_sources
    if not args.range:
        raise ValueError("--sources needs --range I0 I1")
    inputs = [("input", args.input), ("mask file", args.mask_file)]
    check_io(inputs=inputs)
    sources, _, voxel_size = ImageSources.load(args.input)
    # the output may replace neither the location list nor an image it names
    check_io(inputs=inputs + [("image file", p) for p in sources.paths],
             outputs=[("output", args.output)], overwrite=args.overwrite)
    return mask_sources(sources, recipe, args.output, args.range[0], args.range[1],
                        voxel_size=voxel_size, threads=max(1, args.threads),
                        overwrite=args.overwrite, nonfinite=nonfinite_policy(args))


def args_from_recipe(recipe):
    """Command-line options that make ``run`` build ``recipe`` (a MaskRecipe): how the
    ApplyMask protocols turn their form into a command line (floats by ``repr``)."""
    nonfinite = nonfinite_args(recipe.nonfinite)
    if recipe.mask_file is not None:
        return ["--mask-file", recipe.mask_file] + nonfinite
    names = {"radius": "--radius", "inner_radius": "--inner-radius",
             "outer_radius": "--outer-radius", "box_size": "--box-size", "height": "--height",
             "sigma": "--sigma", "border_decay": "--border-decay"}
    args = ["--geometry", recipe.geometry]
    for key, value in sorted(recipe.params.items()):
        args += [names[key], repr(float(value)) if key == "sigma" else str(int(value))]
    args += ["--center"] + [str(int(c)) for c in recipe.center]
    args += ["--fill", recipe.fill, "--fill-value", repr(recipe.fill_value),
             "--seed", str(recipe.seed)]
    return args + (["--gaussian-peak-one"] if recipe.gaussian_peak_one else []) + nonfinite
