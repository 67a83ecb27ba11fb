"""Resume bookkeeping of the resumable pipelines (extraction, reconstruction, RELION 5
projects): what inputs a step's results were made from, and whether they may be reused.

A resumable step writes a *fingerprint* (text, e.g. JSON of its settings and the
:func:`file_signature` of its inputs) to a record file next to its outputs. A later run with
the same fingerprint keeps the outputs it finds (resume); with another one,
:func:`claim_outputs` deletes them before recording the new fingerprint, so a run never
resumes from results of other inputs or settings.
"""
import contextlib
import os
from typing import Iterable, List, Optional

from ..convert.mrc import atomic_output

__all__ = ["file_signature", "read_record", "write_record", "claim_outputs"]


def file_signature(paths: Iterable[Optional[str]]) -> List[list]:
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


def read_record(path: str) -> Optional[str]:
    """The text of a fingerprint record (see :func:`claim_outputs`); None when there is none."""
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def write_record(path: str, fingerprint: str) -> None:
    """Write a fingerprint record atomically (its folder is created)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(fingerprint)


def claim_outputs(record: str, fingerprint: str, outputs: Iterable[Optional[str]],
                  replace: bool = False) -> bool:
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
