"""File formats and Scipion<->array mapping, in one place.

* :mod:`.mrc` - MRC input/output (memory-mapped reads, atomic writes).
* :mod:`.star` - RELION STAR files.
* :mod:`.euler` - Euler-angle conventions (RELION ZYZ, TOM/STOPGAP zxz).
* :mod:`.scipion` - Scipion coordinates and orientation matrices (imports pyworkflow lazily).
* :mod:`.em` - EM files (TOM/STOPGAP volumes and motive lists).
* :mod:`.motl` - motive lists and particle tables: EM, STOPGAP STAR, RELION 5 particles, CSV.
* :mod:`.paths` - input/output path checks before a run; file signatures for resuming.
"""
