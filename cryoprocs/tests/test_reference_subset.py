"""The reference subset shipped in the repository (cryoprocs/tests/reference_data): small,
complete, and the same data as the full reference pack (files byte-identical, except the two
reductions its README describes, which keep every value the reference programs read)."""
import json
import os

import mrcfile
import numpy as np

from cryoprocs.tests import SUBSET_DIR, _full_pack_root, subset_root

MANIFEST = json.load(open(os.path.join(SUBSET_DIR, "manifest.json")))


def test_subset_is_small_and_unpacks_to_its_manifest():
    size = sum(os.path.getsize(os.path.join(dp, f))
               for dp, _, fs in os.walk(SUBSET_DIR) for f in fs)
    assert size <= 10 * 1024 * 1024, size
    root = subset_root()                      # unpacking checks every sha256
    for rel in MANIFEST:
        assert os.path.isfile(os.path.join(root, rel)), rel
    readme = open(os.path.join(SUBSET_DIR, "README.md")).read()
    for folder in ("xmipp_masks", "cryocat_peaks", "relion5_extract", "real/cylindra",
                   "real/cryocat_tilt_stack", "real/hiv_vlp"):
        assert folder in readme and "icence" in readme


def test_subset_equals_the_full_pack_where_both_exist():
    full, root = _full_pack_root(), subset_root()
    if full is None:                          # a user's clone: the sha256 check above holds
        return
    for rel, info in MANIFEST.items():
        src = os.path.join(full, rel)
        if "reduced" in info or not os.path.exists(src):
            continue
        assert open(src, "rb").read() == open(os.path.join(root, rel), "rb").read(), rel
    # the reduced tilt series: kept pixels (every box RELION reads) and the maximum unchanged
    rel = "relion5_extract/tiltseries/TS_01.mrcs"
    a = mrcfile.read(os.path.join(full, rel))
    b = mrcfile.read(os.path.join(root, rel))
    kept = b != 0
    assert kept.mean() > 0.5 and np.array_equal(a[kept], b[kept])
    assert np.abs(a).max() == np.abs(b).max()
    # the cases files list a subset of the full pack's cases, unchanged
    for rel in ("xmipp_masks/cases.json", "relion5_extract/cases.json"):
        ours = json.load(open(os.path.join(root, rel)))["cases"]
        theirs = json.load(open(os.path.join(full, rel)))["cases"]
        assert ours and all(c in theirs for c in ours), rel
