"""convert.paths: the path checks every command runs before any work."""
import os

import pytest

from cryoprocs.convert.paths import check_io, check_output_dir


@pytest.fixture
def files(tmp_path):
    a = tmp_path / "a.mrc"
    a.write_bytes(b"x" * 10)
    os.symlink(a, tmp_path / "link.mrc")
    (tmp_path / "sub").mkdir()
    return tmp_path, str(a)


def test_inputs_may_carry_image_locations(files):
    tmp, a = files
    check_io(inputs=[("input", a + ":mrc"), ("stack", "2@" + a + ":mrcs"), ("none", None)],
             outputs=[("output", str(tmp / "out.mrc"))])
    with pytest.raises(ValueError, match="same file as the input"):
        check_io(inputs=[("input", a + ":mrc")], outputs=[("output", a)], overwrite=True)


@pytest.mark.parametrize("case, exc, needle", [
    ("missing", FileNotFoundError, "does not exist"),
    ("folder-input", IsADirectoryError, "is a folder; give a file"),
    ("folder-output", IsADirectoryError, "is a folder; give a file name"),
    ("link-to-input", ValueError, "same file as the input"),
    ("two-outputs", ValueError, "are the same file"),
    ("exists", FileExistsError, "--overwrite"),
    ("parent-is-file", NotADirectoryError, "is a file, not a folder"),
])
def test_bad_paths_name_the_offender(files, case, exc, needle):
    tmp, a = files
    out = str(tmp / "o.mrc")
    ins, outs, ow = [("input", a)], [("output", out)], False
    if case == "missing":
        ins = [("input", str(tmp / "nope.mrc"))]
    elif case == "folder-input":
        ins = [("input", str(tmp / "sub"))]
    elif case == "folder-output":
        outs = [("output", str(tmp / "sub"))]
    elif case == "link-to-input":
        outs, ow = [("output", str(tmp / "link.mrc"))], True
    elif case == "two-outputs":
        outs = [("output", out), ("report", str(tmp / "." / "o.mrc"))]
    elif case == "exists":
        open(out, "w").close()
    else:
        outs = [("output", os.path.join(a, "x", "o.mrc"))]
    with pytest.raises(exc, match=needle):
        check_io(inputs=ins, outputs=outs, overwrite=ow)


def test_output_dir_rules(files):
    tmp, a = files
    check_output_dir(str(tmp / "new" / "deeper"), ("a.mrc",), [("particles", a)])
    with pytest.raises(ValueError, match="would replace the input particles"):
        check_output_dir(str(tmp), ("a.mrc",), [("particles", a)])
    with pytest.raises(NotADirectoryError):
        check_output_dir(os.path.join(a, "out"), ("x",))
