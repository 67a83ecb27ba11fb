"""The command lines the protocols build from their forms mean what the forms mean.

Every per-item step runs ``cryoprocs <command> ...`` (possibly as a cluster job): the options
built from a form must parse back to exactly the parameters the form describes.
"""
import os
import sys

import numpy as np
import pytest

from cryoprocs import cli
from cryoprocs.commands import (extract, mask, movie, noise_fill, nonfinite_args,
                                nonfinite_policy, pick, reconstruct, subvolumes)
from cryoprocs.convert.mrc import mrc_info, read_mrc, write_mrc
from cryoprocs.kernels.noisefill import NoiseFillParams
from cryoprocs.pipelines.extract import Stack2DSettings, SubvolumeSettings
from cryoprocs.pipelines.reconstruct import ReconstructSettings
from cryoprocs.pipelines.masks import ImageSources, MaskRecipe
from cryoprocs.pipelines.movie import MovieSettings, OverlaySettings
from cryoprocs.pipelines.peaks import PickOptions
from cryoprocs.protocols.protocol_base import chunk_ranges, cryoprocs_program, parse_memory_mb


#: the protocols' "Replace non-finite values?" switch, off and on
NONFINITE = ("error", "replace")


def _parse(command, args):
    return cli.build_parser().parse_args([command] + args)


@pytest.mark.parametrize("params", [
    NoiseFillParams(),
    NoiseFillParams(threshold=127.5, invert=True, expansion=20, soft_edge=0.0,
                    smooth_iterations=2, noise_stats="robust", noise_level=0.3,
                    spectral=True, seed=7, boundary_sigma=1.5),
    NoiseFillParams(expansion_mode="gaussian", sigma=3.0, expansion=4,
                    gaussian_threshold=0.1234567891234),
    NoiseFillParams(noise_stats="parity", background_value=-0.25),
    NoiseFillParams(parity=True, expansion=12, fast=True, boundary_sigma=0.0,
                    smooth_iterations=0, noise_level=0.2, background_value=1.5, seed=3),
    NoiseFillParams(parity=True),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_noise_fill_args_round_trip(params, nonfinite):
    args = _parse("noise-fill", ["--input_tomo", "t.mrc", "--input_mask", "m.mrc",
                                 "--output_tomo", "o.mrc"]
                  + noise_fill.args_from_params(params, nonfinite))
    assert noise_fill.params_from_args(args).resolved() == params.resolved()
    assert nonfinite_policy(args) == nonfinite


@pytest.mark.parametrize("opts", [
    PickOptions(min_distance=10.0),
    PickOptions(min_distance=7.5, threshold_mode="direct", threshold=0.123456789,
                max_picks=25, border=3, mask_mode="inside", angles_order="zzx",
                angles_numbering=1, symmetry="C6", randomize_symmetry=False, seed=11,
                min_peak_size=4,
                angular_filter={"min_count": 4, "max_angle": 20.0, "radius": 2.0}),
    PickOptions(min_distance=12.0, threshold_mode="sigma", sigma=2.5, threshold=0.2,
                compatible=True),
    PickOptions(min_distance=3.0, threshold_mode="percentile", percentile=99.9),
    PickOptions(min_distance=3.0, threshold_mode="triangle", n_false_positives=2.0),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_pick_args_round_trip(opts, nonfinite):
    args = _parse("pick", ["--scores", "s.mrc", "--angles", "a.mrc", "--angle-list", "l.csv",
                           "--output", "o.csv"] + pick.args_from_options(opts, nonfinite))
    assert pick.options_from_args(args) == opts
    assert nonfinite_policy(args) == nonfinite


@pytest.mark.parametrize("settings", [
    MovieSettings(),
    MovieSettings(format="avi", fps=12.5, playback="forward", keep_range=(3, 40), axis="y",
                  slab=5, binning=2, max_width=300, window="percentile",
                  percentiles=(0.5, 99.5), clahe=False, invert=True, label=True,
                  scale_bar=True, png_frames=True),
    MovieSettings(format="gif", discard_fraction=(0.1, 0.25), clip_limit=3.5,
                  tile_grid_size=4, axis="x"),
    MovieSettings(format="png", crf=18, preset="slow"),
    MovieSettings(format="avi", fourcc="XVID"),
    MovieSettings(format="avi", playback="pingpong", pause=5, cycles=3, upscale=4,
                  jpeg_quality=75, binning=3),
    MovieSettings(format="mp4", playback="forward", pause=2, cycles=2, max_width=640),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_movie_args_round_trip(settings, nonfinite):
    args = _parse("movie", ["in.mrc", "out"] + movie.args_from_settings(settings, nonfinite))
    assert vars(movie.settings_from_args(args)) == vars(settings)
    assert nonfinite_policy(args) == nonfinite


@pytest.mark.parametrize("overlay", [
    OverlaySettings(particles="p.csv"),
    OverlaySettings(particles="parts.star", radius=12.345678901234, radius_unit="px",
                    box_size=33.3, style="filled", colour="yellow", flag_colour="#FF00AA",
                    color_by="score", colormap="magma", color_range=(0.125, 0.75), ids=True,
                    tomo_name="TS_01", max_dose=52.5, thickness=3),
    OverlaySettings(particles="TS_01.mod", radius=150.0, radius_unit="A", style="mrc2movie",
                    color_by="class"),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_movie_overlay_args_round_trip(overlay, nonfinite):
    """The particle options the protocol builds parse back to the same overlay settings."""
    args = _parse("movie", ["in.mrc", "out"] + movie.args_from_overlay(overlay, nonfinite))
    assert movie._overlay_settings(args) == overlay
    assert nonfinite_policy(args) == nonfinite


@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_movie_checker_args_round_trip(nonfinite):
    """ExportMovie's coordinate-checker command line (OUTPUT_DIR only, --tomograms, options
    between positionals and the rest): the settings, the overlay and the non-finite switch
    come back."""
    settings = MovieSettings(format="avi", playback="forward", label=True)
    overlay = OverlaySettings(particles="parts.star", box_size=64.0, max_dose=50.0)
    args = _parse("movie", ["--tomograms", "tomograms.star", "--project-dir", "proj",
                            "--tomo-name", "TS_01", "out", "--name", "TS_01"]
                  + movie.args_from_settings(settings, nonfinite)
                  + movie.args_from_overlay(overlay))
    assert vars(movie.settings_from_args(args)) == vars(settings)
    assert movie._overlay_settings(args) == overlay
    assert nonfinite_policy(args) == nonfinite


def test_hidden_protocol_options_are_not_in_help():
    text = cli.build_parser()._subparsers._group_actions[0].choices["pick"].format_help()
    assert "--result" not in text and "--angular-distance-maps" not in text
    text = cli.build_parser()._subparsers._group_actions[0].choices["noise-fill"].format_help()
    assert "--voxel-size" not in text
    text = cli.build_parser()._subparsers._group_actions[0].choices["movie"].format_help()
    assert "--frame-list" not in text and "--central-png" not in text


def test_cryoprocs_program_is_this_interpreters_command():
    program, lead = cryoprocs_program()
    assert os.path.dirname(program) == os.path.dirname(sys.executable)
    assert (os.path.basename(program), lead) in (("cryoprocs", []),
                                                 (os.path.basename(sys.executable),
                                                  ["-m", "cryoprocs.cli"]))


def test_chunk_ranges_cover_once():
    for n in (1, 2, 5, 10, 11, 1000):
        for k in (1, 2, 3, 7, 2000):
            r = chunk_ranges(n, k)
            assert len(r) <= k and r[0][0] == 0 and r[-1][1] == n
            assert all(a < b for a, b in r) and all(r[i][1] == r[i + 1][0]
                                                   for i in range(len(r) - 1))
    assert chunk_ranges(0, 3) == []


def test_parse_memory_mb():
    assert parse_memory_mb("2000") == 2000
    assert parse_memory_mb("8G") == 8192 and parse_memory_mb("8gb") == 8192
    assert parse_memory_mb("512M") == 512
    assert parse_memory_mb("lots") is None and parse_memory_mb(None) is None


def _recipe_vars(recipe):
    return {k: v for k, v in vars(recipe).items() if k not in ("_cache", "_lock")}


@pytest.mark.parametrize("recipe", [
    MaskRecipe("circular", {"radius": 8}, center=(2, -1, 0), fill="noise", seed=5),
    MaskRecipe("raised_crown", {"inner_radius": 3, "outer_radius": 9, "border_decay": 2},
               fill="avg"),
    MaskRecipe("gaussian", {"sigma": 2.75}, gaussian_peak_one=True, fill_value=-1.5),
    MaskRecipe("cylinder", {"radius": 12, "height": 20}, center=(0, 0, 3)),
    MaskRecipe(mask_file="created_mask.mrc"),
    MaskRecipe("sphere", {"radius": 5}, fill="avg", nonfinite="replace"),
    MaskRecipe(mask_file="created_mask.mrc", nonfinite="replace"),
])
def test_mask_args_round_trip(recipe):
    args = _parse("mask", ["--input", "in.mrcs", "--output", "o.mrcs"]
                  + mask.args_from_recipe(recipe))
    assert _recipe_vars(mask.recipe_from_args(args)) == _recipe_vars(recipe)


def test_masked_chunks_equal_the_whole_stack(tmp_path):
    """Chunks of a set, each masked by its own command into its own stack, hold the values
    of the whole set masked at once (noise streams depend on the position in the set)."""
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(7, 24, 24)).astype(np.float32)
    src = str(tmp_path / "in.mrcs")
    write_mrc(src, stack, voxel_size=4.0, is_stack=True)
    recipe = ["--geometry", "circular", "--radius", "8", "--fill", "noise", "--seed", "3"]
    whole = str(tmp_path / "whole.mrcs")
    assert cli.main(["mask", "--input", src, "--output", whole] + recipe) == 0
    sources = str(tmp_path / "sources.npz")
    ImageSources.from_locations([(i + 1, src) for i in range(7)]).save(sources, voxel_size=4.0)
    chunks = []
    for i0, i1 in chunk_ranges(7, 3):
        out = str(tmp_path / ("chunk_%d.mrcs" % i0))
        assert cli.main(["mask", "--input", sources, "--sources", "--range", str(i0), str(i1),
                         "--output", out, "--threads", "2"] + recipe) == 0
        chunks.append(read_mrc(out).reshape(-1, 24, 24))
        assert mrc_info(out).voxel_size[0] == pytest.approx(4.0)
    np.testing.assert_array_equal(np.concatenate(chunks), read_mrc(whole))


@pytest.mark.parametrize("settings", [
    Stack2DSettings(box=64),
    Stack2DSettings(box=32, crop=24, binning=2.0, do_ctf=False, circle_crop=False,
                    float16=True, max_dose=50.0, min_frames=5, apply_offsets=False,
                    invert_contrast=False),
    Stack2DSettings(box=16, dose_weighting=False),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_extract_args_round_trip(settings, nonfinite):
    args = _parse("extract", ["--particles", "p.star", "--tomograms", "t.star",
                              "--output-dir", "o"]
                  + extract.args_from_settings(settings, nonfinite))
    assert extract.settings_from_args(args) == settings
    assert nonfinite_policy(args) == nonfinite


@pytest.mark.parametrize("settings", [
    ReconstructSettings(box=64),
    ReconstructSettings(box=128, crop=96, binning=2.0, symmetry="D6", snr=0.125,
                        do_ctf=False, circle_crop=False, max_dose=60.0,
                        cutoff_fraction=0.05, taper=4.5, apply_offsets=False,
                        invert_contrast=False),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_reconstruct_args_round_trip(settings, nonfinite):
    args = _parse("reconstruct", ["--particles", "p.star", "--tomograms", "t.star",
                                  "--output-dir", "o"]
                  + reconstruct.args_from_settings(settings, nonfinite))
    assert reconstruct.settings_from_args(args) == settings
    assert nonfinite_policy(args) == nonfinite


@pytest.mark.parametrize("settings", [
    SubvolumeSettings(box=32),
    SubvolumeSettings(box=24, binning=2.5, invert_contrast=True, normalize=True,
                      outside="pad"),
])
@pytest.mark.parametrize("nonfinite", NONFINITE)
def test_subvolumes_args_round_trip(settings, nonfinite):
    args = _parse("extract-subvolumes", ["--coordinates", "c.json", "--tilt-series", "TS 1",
                                         "--output-dir", "o", "--status", "s.json"]
                  + subvolumes.args_from_settings(settings, nonfinite))
    assert subvolumes.settings_from_args(args) == settings
    assert nonfinite_policy(args) == nonfinite


def test_nonfinite_args_reject_unknown_policies():
    with pytest.raises(ValueError, match="non-finite policy"):
        nonfinite_args("ignore")


def test_hidden_subcommand_is_not_listed():
    assert "extract-subvolumes" not in cli.build_parser().format_help()
    assert "extract-subvolumes" in cli.HIDDEN_COMMANDS
