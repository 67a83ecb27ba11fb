"""Checks of input and output paths shared by the console commands and the pipelines.

Every command that writes files runs :func:`check_io` before any work, so bad paths give one
clear error and nothing is read, written or overwritten.
"""
import contextlib
import os

__all__ = ["check_io", "check_output_dir", "same_file", "file_signature", "read_record",
           "write_record", "claim_outputs"]


def same_file(a, b):
    """True when paths ``a`` and ``b`` name the same file (symbolic or hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_io(inputs=(), outputs=(), overwrite=False):
    """Validate the paths of one run before it starts.

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
    """
    from .images import is_image_store, is_url
    from .mrc import parse_location
    # image locations may carry an index ("3@stack.mrcs") or a format hint ("tomo.mrc:mrc")
    ins = [(lab, parse_location(str(p))[1]) for lab, p in inputs if p]
    outs = [(lab, p) for lab, p in outputs if p]
    for lab, p in ins:
        if is_url(p):                               # checked when opened
            continue
        if is_image_store(p):                       # OME-Zarr folder
            if not os.path.exists(p):
                raise FileNotFoundError("%s %s does not exist" % (lab, p))
            continue
        if not os.path.exists(p):
            raise FileNotFoundError("%s %s does not exist" % (lab, p))
        if os.path.isdir(p):
            raise IsADirectoryError("%s %s is a folder; give a file" % (lab, p))
    for i, (lab, p) in enumerate(outs):
        if str(p).rstrip("/").lower().endswith(".zarr") and os.path.exists(p):
            if not overwrite:                       # an OME-Zarr output folder
                raise FileExistsError("%s %s exists; pass --overwrite to replace it"
                                      % (lab, p))
            continue
        if os.path.isdir(p):
            raise IsADirectoryError("%s %s is a folder; give a file name" % (lab, p))
        for ilab, ip in ins:
            if same_file(p, ip):
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
        if os.path.exists(p) and not overwrite:
            raise FileExistsError("%s %s exists; pass --overwrite to replace it" % (lab, p))


def file_signature(paths):
    """``[[real path, size, mtime_ns], ...]`` of existing files (missing ones: size -1):
    what a resumable step records to recognise results made from other inputs."""
    out = []
    for p in sorted({os.path.realpath(p) for p in paths if p}):
        try:
            st = os.stat(p)
            out.append([p, int(st.st_size), int(st.st_mtime_ns)])
        except OSError:
            out.append([p, -1, 0])
    return out


def check_output_dir(output_dir, names, inputs=()):
    """Validate an output folder (RELION's ``--o``) before a run.

    Parameters
    ----------
    output_dir : str
        the folder (created later when missing).
    names : iterable of str
        file names the run writes inside it.
    inputs : iterable of (label, path)
        input files none of the outputs may replace.

    Raises
    ------
    NotADirectoryError
        ``output_dir`` (or a parent) is a file.
    ValueError
        an output file would replace an input, e.g. ``--output-dir`` the input's own folder.
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


def read_record(path):
    """The text of a fingerprint record (see :func:`claim_outputs`); None when there is none."""
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def write_record(path, fingerprint):
    """Write a fingerprint record atomically (its folder is created)."""
    from .mrc import atomic_output
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(fingerprint)


def claim_outputs(record, fingerprint, outputs, replace=False):
    """Make the existing ``outputs`` of a resumable step belong to ``fingerprint``.

    When the ``record`` file holds another fingerprint (or none), or ``replace`` is True, the
    record and then every existing output are deleted before the new fingerprint is
    recorded: a run killed afterwards resumes with its own outputs only, never with those of
    other inputs or settings. Outputs of a matching record are kept (resume).

    Returns True when existing outputs were given up (deleted).
    """
    if not replace and read_record(record) == fingerprint:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.remove(record)
    for out in outputs:
        if out:
            with contextlib.suppress(FileNotFoundError):
                os.remove(out)
    write_record(record, fingerprint)
    return True
