"""Every command against a table of bad inputs: exit status 2, one line naming the bad value,
no file left behind (hidden ones included) and every input unchanged (sha256)."""
import os
import shutil
import struct

import mrcfile
import numpy as np
import pytest

from . import data as fault_data
from . import TEMPORARY, mount_or_skip, one_line, run_cli, run_on_mount, tree

SHAPE = (16, 40, 40)


@pytest.fixture
def work(tmp_path):
    """Inputs of every command in ``tmp_path/w`` (a RELION project in ``w/proj``)."""
    w = tmp_path / "w"
    w.mkdir()
    fault_data.write_volume(w / "vol.mrc", fault_data.tomogram(SHAPE))
    fault_data.write_volume(w / "mask.mrc", fault_data.mask_volume(SHAPE))
    fault_data.write_volume(w / "ang.mrc", np.zeros(SHAPE, np.float32))
    (w / "alist.csv").write_text("0,0,0\n10,20,30\n")
    (w / "ts.tlt").write_text("\n".join(str(a) for a in range(-30, 30, 4)) + "\n")
    fault_data.write_volume(w / "ts.mrcs", fault_data.tomogram((15, 40, 40), seed=3), stack=True)
    (w / "parts.csv").write_text("x,y,z,score\n10,12,8,0.5\n25,30,4,0.9\n")
    return w


def _inputs_of(cmd, w):
    """The RELION project is made only for the commands that read it."""
    if cmd in ("extract", "reconstruct", "movie-checker") and not (w / "proj").exists():
        fault_data.relion_project(w / "proj", tomo_names=("TS_01",), n_particles=6)
    return w


def _project_stack(w):
    return str(w / "proj" / "sim0" / "tiltseries" / "ts0.mrcs")


COMMANDS = {
    # command: (argv builder, {input label: path builder}, output builder, mask label)
    "mask": (lambda w: ["mask", "--input", w / "vol.mrc", "--output", w / "out.mrc",
                        "--mask-file", w / "mask.mrc"],
             {"input": lambda w: w / "vol.mrc", "mask": lambda w: w / "mask.mrc"},
             lambda w: w / "out.mrc", "mask"),
    "noise-fill": (lambda w: ["noise-fill", "--input_tomo", w / "vol.mrc", "--input_mask",
                              w / "mask.mrc", "--output_tomo", w / "out.mrc",
                              "--expand_pixels", "2", "--threads", "1"],
                   {"input": lambda w: w / "vol.mrc", "mask": lambda w: w / "mask.mrc"},
                   lambda w: w / "out.mrc", "mask"),
    "pick": (lambda w: ["pick", "--scores", w / "vol.mrc", "--angles", w / "ang.mrc",
                        "--angle-list", w / "alist.csv", "--min-distance", "4",
                        "--tomo-mask", w / "mask.mrc", "--output", w / "out.csv"],
             {"input": lambda w: w / "vol.mrc", "angles": lambda w: w / "ang.mrc",
              "mask": lambda w: w / "mask.mrc"},
             lambda w: w / "out.csv", "mask"),
    "movie": (lambda w: ["movie", w / "vol.mrc", w / "movies", "--codec", "MJPG"],
              {"input": lambda w: w / "vol.mrc"},
              lambda w: w / "movies" / "vol.avi", None),
    "movie-tilt": (lambda w: ["movie", w / "ts.mrcs", w / "movies", "--codec", "MJPG",
                              "--tilt_angles", w / "ts.tlt"],
                   {"input": lambda w: w / "ts.mrcs"},
                   lambda w: w / "movies" / "ts.avi", None),
    # particles drawn on a tomogram, and the coordinate checker on a RELION 5 project's tilt
    # series (its tilt images are the MRC input)
    "movie-particles": (lambda w: ["movie", w / "vol.mrc", w / "movies", "--codec", "MJPG",
                                   "--particles", w / "parts.csv", "--color-by", "score"],
                        {"input": lambda w: w / "vol.mrc"},
                        lambda w: w / "movies" / "vol.avi", None),
    "movie-checker": (lambda w: ["movie", w / "movies", "--tomograms",
                                 w / "proj" / "tomograms.star", "--particles",
                                 w / "proj" / "particles.star", "--project-dir", w / "proj",
                                 "--box-size", "16", "--codec", "MJPG"],
                      {"input": _project_stack},
                      lambda w: w / "movies" / "TS_01.avi", None),
    # movies encoded by ffmpeg (a child process): H.264 (frames cached for the backward
    # pass) and a colour GIF (a palette file next to the movie)
    "movie-h264": (lambda w: ["movie", w / "vol.mrc", w / "movies", "--codec", "h264"],
                   {"input": lambda w: w / "vol.mrc"},
                   lambda w: w / "movies" / "vol.mp4", None),
    "movie-gif-particles": (lambda w: ["movie", w / "vol.mrc", w / "movies", "--codec", "gif",
                                       "--particles", w / "parts.csv", "--color-by", "score"],
                            {"input": lambda w: w / "vol.mrc"},
                            lambda w: w / "movies" / "vol.gif", None),
    # mask --save-mask: the mask is written first; a failed run leaves neither file
    "mask-save-mask": (lambda w: ["mask", "--input", w / "vol.mrc", "--output", w / "out.mrc",
                                  "--mask-file", w / "mask.mrc", "--save-mask",
                                  w / "saved_mask.mrc"],
                       {"input": lambda w: w / "vol.mrc", "mask": lambda w: w / "mask.mrc"},
                       lambda w: w / "out.mrc", "mask"),
    "extract": (lambda w: ["extract", "--particles", w / "proj" / "particles.star",
                           "--tomograms", w / "proj" / "tomograms.star", "--box-size", "16",
                           "--output-dir", w / "out", "--project-dir", w / "proj"],
                {"input": _project_stack}, None, None),
    "reconstruct": (lambda w: ["reconstruct", "--particles", w / "proj" / "particles.star",
                               "--tomograms", w / "proj" / "tomograms.star", "--box-size",
                               "16", "--output-dir", w / "out", "--project-dir", w / "proj"],
                    {"input": _project_stack}, None, None),
}


# ----------------------------------------------------------------------------- bad files
def _rewrite_header(path, offset, fmt, value):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack(fmt, value))


def _put(path, index, value):
    with mrcfile.mmap(str(path), "r+") as m:
        m.data[index] = value


def _bad_file(kind, path):
    """Make the MRC file ``path`` bad in one way; returns the text the message must hold."""
    path = str(path)
    with mrcfile.open(path, header_only=True) as m:
        nz = int(m.header.nz)
    if kind == "missing":
        os.remove(path)
        return path
    if kind == "folder":
        os.remove(path)
        os.mkdir(path)
        return path
    if kind == "text":
        with open(path, "w") as fh:
            fh.write("this is not an MRC file\n" * 200)
        return path
    if kind == "empty":
        open(path, "w").close()
        return path
    if kind == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) - 1000)
        return "truncated"
    if kind == "few-sections":                  # header: fewer sections than the file holds
        _rewrite_header(path, 8, "<i", nz - 1)
        return path
    if kind == "mode-6":                        # header says uint16 over float32 data
        _rewrite_header(path, 12, "<i", 6)
        return path
    if kind == "negative-nz":
        _rewrite_header(path, 8, "<i", -5)
        return "-5"
    if kind in ("nan", "inf"):
        _put(path, (nz // 2, 7, 9), np.nan if kind == "nan" else -np.inf)
        return "[%d, 7, 9]" % (nz // 2)
    if kind == "complex":
        with mrcfile.open(path) as m:
            shape = m.data.shape
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(np.ones(shape, np.complex64))
        return "complex"
    raise AssertionError(kind)


FILE_KINDS = ["missing", "folder", "text", "empty", "truncated", "few-sections", "mode-6",
              "negative-nz", "nan", "inf", "complex"]


def _cases():
    for cmd, (_, inputs, _, _) in COMMANDS.items():
        for label in inputs:
            for kind in FILE_KINDS:
                if label == "angles" and kind in ("nan", "inf"):
                    continue            # an angle map is read at the picks only (below)
                yield cmd, label, kind


def _check_failure(rc, err, needle, before, w):
    line = one_line(err)
    assert rc == 2, err
    assert line.startswith("cryoprocs ") and ": error: " in line, line
    assert needle in line, (needle, line)
    assert "Traceback" not in err
    assert tree(w) == before, "files left behind or inputs changed"


@pytest.mark.parametrize("cmd, label, kind", list(_cases()))
def test_bad_input_file(work, capsys, cmd, label, kind):
    _inputs_of(cmd, work)
    build, inputs, _, _ = COMMANDS[cmd]
    needle = _bad_file(kind, inputs[label](work))
    before = tree(work)
    rc, out, err = run_cli(build(work), capsys)
    _check_failure(rc, err, needle, before, work)


def test_bad_angle_map_values(work, capsys):
    """NaN in an angle map at a picked voxel: named with the file, count and first voxel."""
    _put(work / "ang.mrc", (slice(None), slice(None), slice(None)), np.nan)
    before = tree(work)
    rc, out, err = run_cli(COMMANDS["pick"][0](work), capsys)
    _check_failure(rc, err, str(work / "ang.mrc"), before, work)


@pytest.mark.parametrize("cmd", ["mask", "noise-fill", "pick"])
@pytest.mark.parametrize("kind", ["shape", "voxel-size"])
def test_mask_of_another_grid(work, capsys, cmd, kind):
    """A created mask of another shape, or of another voxel size (beyond 1 %)."""
    m = str(work / "mask.mrc")
    if kind == "shape":
        fault_data.write_volume(m, fault_data.mask_volume((SHAPE[0], SHAPE[1], SHAPE[2] - 2)))
        needle = "38"
    else:
        fault_data.write_volume(m, fault_data.mask_volume(SHAPE), voxel_size=10.2)
        needle = "10.2"
    before = tree(work)
    rc, out, err = run_cli(COMMANDS[cmd][0](work), capsys)
    _check_failure(rc, err, needle, before, work)


@pytest.mark.parametrize("cmd", ["mask", "noise-fill", "pick"])
@pytest.mark.parametrize("how", ["same-path", "hard-link", "symlink"])
def test_output_is_an_input(work, capsys, cmd, how):
    """The output names the input itself, a hard link to it or a symbolic link to it: refused
    even with --overwrite."""
    build, _, output, _ = COMMANDS[cmd]
    argv = [str(a) for a in build(work)]
    out = str(output(work))
    # pick writes .csv: its input of that kind is the angle list
    src = str(work / ("alist.csv" if cmd == "pick" else "vol.mrc"))
    if how == "same-path":
        target = src
    else:
        target = str(work / ("link_%s%s" % (how, os.path.splitext(src)[1])))
        (os.link if how == "hard-link" else os.symlink)(src, target)
    argv[argv.index(out)] = target
    before = tree(work)
    rc, _, err = run_cli(argv + ["--overwrite"], capsys)
    _check_failure(rc, err, "same file", before, work)


def test_movie_output_is_its_input(work, capsys):
    """A movie named like its input (an MRC file called .avi): refused, input unchanged."""
    (work / "movies").mkdir()
    shutil.copy(work / "vol.mrc", work / "movies" / "vol.avi")
    before = tree(work)
    rc, _, err = run_cli(["movie", work / "movies" / "vol.avi", work / "movies", "--codec",
                          "MJPG", "--overwrite"], capsys)
    _check_failure(rc, err, "would replace the input", before, work)


def test_output_folder_is_the_project(work, capsys):
    """extract --output-dir the project folder: its particles.star would replace the input
    (refused even with --overwrite)."""
    argv = [str(a) for a in COMMANDS["extract"][0](work)]
    _inputs_of("extract", work)
    argv[argv.index(str(work / "out"))] = str(work / "proj")
    before = tree(work)
    rc, _, err = run_cli(argv + ["--overwrite"], capsys)
    _check_failure(rc, err, "would replace the input particles", before, work)


@pytest.mark.parametrize("cmd", ["extract", "reconstruct"])
@pytest.mark.parametrize("star", ["particles", "tomograms"])
@pytest.mark.parametrize("kind", ["missing", "folder", "text", "empty", "truncated"])
def test_bad_star_file(work, capsys, cmd, star, kind):
    _inputs_of(cmd, work)
    path = str(work / "proj" / ("%s.star" % star))
    if kind == "missing":
        os.remove(path)
    elif kind == "folder":
        os.remove(path)
        os.mkdir(path)
    elif kind == "text":
        with open(path, "w") as fh:
            fh.write("this is not a STAR file\n" * 20)
    elif kind == "empty":
        open(path, "w").close()
    else:
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            fh.truncate(size - 7)
    before = tree(work)
    rc, _, err = run_cli(COMMANDS[cmd][0](work), capsys)
    _check_failure(rc, err, path, before, work)


@pytest.mark.parametrize("cmd", ["extract", "reconstruct", "movie-tilt"])
def test_bad_text_inputs(work, capsys, cmd):
    """A tilt-angle file or a tilt-series STAR file that is not what it should be."""
    _inputs_of(cmd, work)
    if cmd == "movie-tilt":
        path = str(work / "ts.tlt")
        (work / "ts.tlt").write_text("10\nabc\n")
    else:
        path = str(work / "proj" / "sim0" / "tiltseries" / "ts0.star")
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) - 9)
    before = tree(work)
    rc, _, err = run_cli(COMMANDS[cmd][0](work), capsys)
    _check_failure(rc, err, path, before, work)


# ----------------------------------------------------------------------------- mounts
MOUNT_COMMANDS = ["mask", "noise-fill", "pick", "movie", "extract", "reconstruct",
                  "movie-particles", "movie-checker", "movie-h264", "movie-gif-particles",
                  "mask-save-mask"]


def _argv_into(cmd, w, folder):
    """The command's arguments with its output(s) inside ``folder``."""
    argv = [str(a) for a in COMMANDS[cmd][0](w)]
    output = COMMANDS[cmd][2]
    if output is not None:
        old = str(output(w))
        if cmd.startswith("movie"):
            argv[argv.index(str(w / "movies"))] = str(folder)
        else:
            argv[argv.index(old)] = os.path.join(str(folder), os.path.basename(old))
        side = str(w / "saved_mask.mrc")            # --save-mask goes there too
        if side in argv:
            argv[argv.index(side)] = os.path.join(str(folder), "saved_mask.mrc")
    else:
        argv[argv.index(str(w / "out"))] = os.path.join(str(folder), "out")
    return argv


@pytest.mark.parametrize("cmd", MOUNT_COMMANDS)
def test_read_only_output_folder(work, cmd):
    """An output folder on a read-only file system (a private read-only tmpfs: chmod does
    not stop root): one line naming the output and the reason, before any work."""
    mount_or_skip()
    _inputs_of(cmd, work)
    folder = work.parent / "ro"
    folder.mkdir()
    before = tree(work)
    rc, err, left = run_on_mount(_argv_into(cmd, work, folder), folder, "ro")
    line = one_line(err)
    assert rc == 2 and str(folder) in line and "Read-only file system" in line, err
    assert left == [] and tree(work) == before


@pytest.mark.parametrize("cmd", MOUNT_COMMANDS)
def test_disk_full(work, cmd):
    """An output folder that fills up while writing (an 8 kB tmpfs): one line naming the
    output and "No space left on device"; the folder is left empty (no temporary, no lock
    file, no half-written output; extract and reconstruct keep what they finished, for a
    resume)."""
    mount_or_skip()
    _inputs_of(cmd, work)
    folder = work.parent / "full"
    folder.mkdir()
    before = tree(work)
    argv = _argv_into(cmd, work, folder)
    if cmd == "pick":                           # the picks alone fit in 8 kB
        argv += ["--diagnostics", os.path.join(str(folder), "out.png")]
    rc, err, left = run_on_mount(argv, folder, "size=8k")
    line = one_line(err)
    assert rc == 2 and str(folder) in line and "No space left on device" in line, err
    if cmd in ("extract", "reconstruct"):      # finished stacks / partial sums are kept
        assert not [p for p in left if TEMPORARY.search(os.path.basename(p))], left
    else:
        assert left == []
    assert tree(work) == before


# ----------------------------------------------------------------------------- movie particles
def _bad_text_file(kind, path):
    """Make the text input ``path`` bad in one way; returns the text the message must hold."""
    path = str(path)
    if kind == "missing":
        os.remove(path)
    elif kind == "folder":
        os.remove(path)
        os.mkdir(path)
    elif kind == "text":
        with open(path, "w") as fh:
            fh.write("this is not a particle file\n" * 20)
    elif kind == "empty":
        open(path, "w").close()
    else:
        raise AssertionError(kind)
    return os.path.basename(path)


@pytest.mark.parametrize("cmd", ["movie-particles", "movie-checker"])
@pytest.mark.parametrize("kind", ["missing", "folder", "text", "empty"])
def test_bad_particle_file(work, capsys, cmd, kind):
    """--particles missing, a folder, text that is no particle file, 0 bytes: one line naming
    it, no movie folder made."""
    _inputs_of(cmd, work)
    path = work / "parts.csv" if cmd == "movie-particles" else \
        work / "proj" / "particles.star"
    needle = _bad_text_file(kind, path)
    before = tree(work)
    rc, _, err = run_cli(COMMANDS[cmd][0](work), capsys)
    _check_failure(rc, err, needle, before, work)


@pytest.mark.parametrize("kind", ["missing", "text"])
def test_bad_checker_tomograms(work, capsys, kind):
    """The coordinate checker's --tomograms missing or not a STAR file."""
    _inputs_of("movie-checker", work)
    needle = _bad_text_file(kind, work / "proj" / "tomograms.star")
    before = tree(work)
    rc, _, err = run_cli(COMMANDS["movie-checker"][0](work), capsys)
    _check_failure(rc, err, needle, before, work)


@pytest.mark.parametrize("how", ["movie", "info", "png-frames"])
def test_movie_output_is_the_particle_file(work, capsys, how):
    """The particle file where the movie, its description (--info, ExportMovie's) or its
    PNG frames would go: refused even with --overwrite, the file unchanged."""
    (work / "movies").mkdir()
    argv = [str(a) for a in COMMANDS["movie-particles"][0](work)] + ["--overwrite"]
    if how == "movie":
        target = work / "movies" / "vol.avi"
        needle = "would replace the --particles"
    elif how == "info":
        target = work / "movies" / "vol.json"
        argv += ["--info", str(target)]
        needle = "same file"
    else:                                       # the frames folder (--png) would replace it
        target = work / "movies" / "vol_frames"
        argv += ["--png"]
        needle = "would replace the --particles"
    shutil.move(str(work / "parts.csv"), str(target))
    argv[argv.index(str(work / "parts.csv"))] = str(target)
    before = tree(work)
    rc, _, err = run_cli(argv, capsys)
    _check_failure(rc, err, needle, before, work)


# ----------------------------------------------------------------------------- mask --save-mask
@pytest.mark.parametrize("how", ["exists", "same-path", "hard-link", "symlink", "the-output",
                                 "the-mask-file"])
def test_save_mask_path(work, capsys, how):
    """mask --save-mask: an existing file without --overwrite, or a path that is an input
    (itself, a hard or symbolic link to it) or the masked output: refused before anything is
    written, inputs unchanged."""
    argv = [str(a) for a in COMMANDS["mask"][0](work)]
    overwrite = ["--overwrite"]
    if how == "exists":
        target = str(work / "saved_mask.mrc")
        shutil.copy(work / "mask.mrc", target)
        overwrite, needle = [], "exists"
    elif how == "same-path":
        target, needle = str(work / "vol.mrc"), "same file"
    elif how in ("hard-link", "symlink"):
        target = str(work / "link.mrc")
        (os.link if how == "hard-link" else os.symlink)(str(work / "vol.mrc"), target)
        needle = "same file"
    elif how == "the-output":
        target, needle = str(work / "out.mrc"), "same file"
    else:
        target, needle = str(work / "mask.mrc"), "same file"
    before = tree(work)
    rc, _, err = run_cli(argv + ["--save-mask", target] + overwrite, capsys)
    _check_failure(rc, err, needle, before, work)


def test_save_mask_is_one_group_with_the_output(work, capsys):
    """The saved mask and the masked output: both written by a run that succeeds; a run that
    fails after the mask was written (here: the masked output exists) leaves nothing, and
    --overwrite replaces both."""
    argv = [str(a) for a in COMMANDS["mask-save-mask"][0](work)]
    rc, _, err = run_cli(argv, capsys)
    assert rc == 0, err
    mask = mrcfile.read(str(work / "saved_mask.mrc"))
    assert np.array_equal(mask, mrcfile.read(str(work / "mask.mrc")))
    os.remove(work / "saved_mask.mrc")
    before = tree(work)
    rc, _, err = run_cli(argv, capsys)          # out.mrc exists, no --overwrite
    _check_failure(rc, err, "out.mrc exists", before, work)
    rc, _, err = run_cli(argv + ["--overwrite"], capsys)
    assert rc == 0, err
    assert (work / "saved_mask.mrc").exists()


@pytest.mark.parametrize("kind", ["truncated", "few-sections", "mode-6", "negative-nz"])
def test_volume_max_checks_the_header(work, kind):
    """ScoresPeakPicking's all-zero mask check (pipelines.peaks.volume_max) trusts the header's
    maximum only once the header matches the file."""
    from cryoprocs.convert.mrc import MrcFormatError
    from cryoprocs.pipelines.peaks import volume_max
    path = work / "mask.mrc"
    assert volume_max(str(path)) == 1.0
    _bad_file(kind, path)
    with pytest.raises(MrcFormatError, match=str(path)):
        volume_max(str(path))
