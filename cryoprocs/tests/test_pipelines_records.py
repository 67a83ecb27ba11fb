"""pipelines.records: the fingerprints that let a resumable step keep its own results."""
import os

from cryoprocs.pipelines.records import claim_outputs, file_signature, read_record


def test_file_signature_sees_through_links_and_changes(tmp_path):
    tmp = tmp_path
    (tmp / "a.mrc").write_bytes(b"x" * 10)
    a = str(tmp / "a.mrc")
    os.symlink(a, tmp / "link.mrc")
    sig = file_signature([a, str(tmp / "link.mrc"), str(tmp / "missing")])
    assert [s[0] for s in sig] == sorted({os.path.realpath(a),
                                          os.path.realpath(str(tmp / "missing"))})
    assert sig[0][1] == 10 and [s for s in sig if s[1] == -1]
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert file_signature([a]) != [s for s in sig if s[1] == 10]


def test_claim_outputs_keeps_matching_and_deletes_other_results(tmp_path):
    """Outputs of the recorded fingerprint are kept; another fingerprint (or none, or
    replace) deletes them before the new one is recorded."""
    rec, out = str(tmp_path / "r" / "rec.json"), tmp_path / "o.mrc"
    out.write_text("old")
    assert claim_outputs(rec, "A", [str(out), None]) is True        # no record: unknown
    assert not out.exists() and read_record(rec) == "A"
    out.write_text("A's")
    assert claim_outputs(rec, "A", [str(out)]) is False and out.read_text() == "A's"
    assert claim_outputs(rec, "B", [str(out)]) is True and not out.exists()
    out.write_text("B's")
    assert claim_outputs(rec, "B", [str(out)], replace=True) is True and not out.exists()
    assert read_record(rec) == "B" and read_record(str(tmp_path / "none")) is None
