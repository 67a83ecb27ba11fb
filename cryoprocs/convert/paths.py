"""Checks of input and output paths shared by the console commands, pipelines and protocols.

Every command that writes files runs :func:`check_io` (files) or :func:`check_output_dir`
(RELION-style output folders) before any work, so bad paths give one clear error and
nothing is read, written or overwritten; both also take this run's exclusive claim on its
outputs (:mod:`cryoprocs.convert.outputs`), so a second run that wants the same output fails
at once. File names derived from tomogram / tilt-series ids come from :func:`safe_name`.
"""
import hashlib
import os
from typing import Iterable, Optional, Tuple, Union

from . import outputs as outputs_io

__all__ = ["check_io", "check_output_dir", "check_replace", "same_file", "safe_name"]

#: ``(label, path)`` of a command option; ``path`` None when the option is not given
Labelled = Tuple[str, Optional[str]]

#: a file or folder path: a string or an ``os.PathLike`` (e.g. ``pathlib.Path``)
PathLike = Union[str, os.PathLike]



def safe_name(name: str) -> str:
    """A file-name stem for an id (tsId, rlnTomoName): letters, digits, ``-``, ``_`` and
    ``.`` are kept, every other character becomes ``_``; when that changes the id (or it
    starts with ``.``), ``_`` and 8 hex digits of its SHA-1 are appended, so distinct ids
    always give distinct names ("TS_01" -> ``TS_01``, "TS 01" -> ``TS_01_<hash>``)."""
    name = str(name)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    if stem != name or not stem or stem.startswith("."):
        stem = "%s_%s" % (stem.lstrip(".") or "id", hashlib.sha1(name.encode("utf-8"))
                          .hexdigest()[:8])
    return stem


def same_file(a: str, b: str) -> bool:
    """True when paths ``a`` and ``b`` name the same file (symbolic or hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path, folder):
    """True when ``path`` lies inside ``folder`` (e.g. an OME-Zarr level of a store)."""
    a, b = os.path.realpath(path), os.path.realpath(folder)
    return a.startswith(b.rstrip(os.sep) + os.sep)


def check_io(inputs: Iterable[Labelled] = (), outputs: Iterable[Labelled] = (),
             overwrite: bool = False, claim: bool = True) -> None:
    """Validate the paths of one run before it starts and claim its outputs.

    Parameters
    ----------
    inputs : iterable of (label, path)
        files that must exist and be regular files; ``path`` None is skipped; an image
        location's ``n@`` index and ``:mrc``/``:mrcs`` hint are ignored; OME-Zarr folders
        must exist, URLs are checked when opened.
    outputs : iterable of (label, path)
        files to be written; ``path`` None is skipped.
    overwrite : bool
        whether existing outputs may be replaced.
    claim : bool
        take this run's exclusive claim on every output (:func:`cryoprocs.convert.outputs.claim`)
        until the enclosing :func:`~cryoprocs.convert.outputs.run_scope` ends.

    Raises
    ------
    FileNotFoundError
        an input does not exist.
    NotADirectoryError
        an output's folder path goes through a file.
    IsADirectoryError
        an input or an output is a folder.
    ValueError
        an output names an input, or two outputs name the same file.
    FileExistsError
        an output exists and ``overwrite`` is False.
    OutputInUseError
        another run is writing an output.
    OSError
        an output folder is not writable.
    """
    from .images import is_image_store, is_url
    from .mrc import parse_location
    # image locations may carry an index ("3@stack.mrcs") or a format hint ("tomo.mrc:mrc")
    ins = [(lab, parse_location(str(p))[1]) for lab, p in inputs if p]
    outs = [(lab, p) for lab, p in outputs if p]
    for lab, p in ins:
        if is_url(p):                               # checked when opened
            continue
        if is_image_store(p):                       # OME-Zarr folder (or one level of it)
            from .zarr_image import split_level
            if not os.path.exists(split_level(p)[0]):
                raise FileNotFoundError("%s %s does not exist" % (lab, split_level(p)[0]))
            continue
        if not os.path.exists(p):
            raise FileNotFoundError("%s %s does not exist" % (lab, p))
        if os.path.isdir(p):
            raise IsADirectoryError("%s %s is a folder; give a file" % (lab, p))
    for i, (lab, p) in enumerate(outs):
        zarr_out = str(p).rstrip("/").lower().endswith(".zarr")   # an OME-Zarr folder
        if os.path.isdir(p) and not zarr_out:
            raise IsADirectoryError("%s %s is a folder; give a file name" % (lab, p))
        for ilab, ip in ins:
            if is_url(ip):
                continue
            if same_file(p, ip) or (zarr_out and _inside(ip, p)):
                raise ValueError("%s %s is the same file as the %s %s: outputs never "
                                 "replace inputs" % (lab, p, ilab, ip))
        for olab, op in outs[:i]:
            if os.path.abspath(op) == os.path.abspath(p) or (
                    os.path.exists(p) and same_file(p, op)):
                raise ValueError("%s and %s are the same file %s; give different names"
                                 % (olab, lab, p))
        parent = os.path.dirname(os.path.abspath(p))
        while not os.path.exists(parent):          # missing folders are created
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise NotADirectoryError("%s %s: %s is a file, not a folder" % (lab, p, parent))
    if claim:
        for lab, p in outs:
            outputs_io.claim(p, lab)
    for lab, p in outs:
        if os.path.lexists(p) and not overwrite:
            raise FileExistsError("%s %s exists; pass --overwrite to replace it" % (lab, p))


def check_output_dir(output_dir: str, names: Iterable[str], inputs: Iterable[Labelled] = (),
                     claim: bool = True) -> None:
    """Validate an output folder (RELION's ``--o``) before a run and claim it.

    Parameters
    ----------
    output_dir : str
        the folder (created later when missing).
    names : iterable of str
        file names the run writes inside it.
    inputs : iterable of (label, path)
        input files none of the outputs may replace.
    claim : bool
        take this run's exclusive claim on the folder (its lock file lies next to it).

    Raises
    ------
    NotADirectoryError
        ``output_dir`` (or a parent) is a file.
    ValueError
        an output file would replace an input, e.g. ``--output-dir`` the input's own folder.
    OutputInUseError
        another run is writing into the folder.
    """
    path = os.path.abspath(output_dir)
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise NotADirectoryError("output folder %s: %s is a file" % (output_dir, probe))
    for name in names:
        out = os.path.join(path, name)
        for lab, p in inputs:
            if p and (os.path.abspath(p) == out or (os.path.exists(out) and same_file(out, p))):
                raise ValueError("output folder %s: its %s would replace the input %s %s; "
                                 "choose another output folder" % (output_dir, name, lab, p))
    if claim:
        outputs_io.claim(path, "output folder", folder=True)


def check_replace(paths: Iterable[Optional[str]], allowed: bool, overwrite: bool,
                  why: str = "was not written by this command with these inputs and "
                             "settings") -> None:
    """Refuse to replace existing files a run is not entitled to replace.

    ``allowed``: the files are this run's own results (e.g. its fingerprint record matches,
    :mod:`cryoprocs.pipelines.records`);
    otherwise they are replaced only with ``overwrite``.

    Raises
    ------
    FileExistsError
        naming the first existing file.
    """
    if allowed or overwrite:
        return
    for p in paths:
        if p and os.path.lexists(p):
            raise FileExistsError("%s exists and %s; pass --overwrite to replace it or choose "
                                  "another output" % (p, why))
