"""The claim / temporary-file machinery (cryoprocs.convert.outputs) and the id -> file-name
helper, on their own: lock-file pitfalls, stale leftovers of killed runs, group commits."""
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from cryoprocs.convert import outputs
from cryoprocs.convert.paths import safe_name


def test_claim_is_exclusive_between_processes_and_reentrant_within(tmp_path):
    out = tmp_path / "sub" / "out.mrc"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from cryoprocs.convert import outputs
            with outputs.run_scope():
                outputs.claim(sys.argv[1])
                print("held", flush=True)
                sys.stdin.readline()
            """), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(outputs.OutputInUseError) as exc:
        with outputs.run_scope():
            outputs.claim(out)
    assert str(out) in str(exc.value) and "process %d" % holder.pid in str(exc.value)
    holder.communicate("\n")
    assert os.listdir(tmp_path) == []           # lock file and the folder it needed: gone
    with outputs.run_scope():
        a = outputs.claim(out)
        with outputs.run_scope():
            assert outputs.claim(out) is a            # re-entrant in one process
        assert (tmp_path / "sub" / ".out.mrc.lock").exists()
    assert os.listdir(tmp_path) == []


def test_lock_files_never_give_two_holders(tmp_path):
    """Four processes claim and release one output 300 times each as fast as they can. The
    lock file is unlinked by its holder while locked and re-checked by the next one (the
    classic pitfall: locking a file that was just removed): never two holders at once."""
    code = textwrap.dedent("""
        import os, sys, time
        from cryoprocs.convert import outputs
        out, marker = sys.argv[1], sys.argv[2]
        time.sleep(max(0.0, float(sys.argv[3]) - time.time()))      # start together
        got = 0
        for _ in range(300):
            try:
                with outputs.run_scope():
                    outputs.claim(out)
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # inside
                    os.close(fd)
                    os.remove(marker)
                    got += 1
            except outputs.OutputInUseError:
                pass
        print(got)
        """)
    out, marker = str(tmp_path / "o.mrc"), str(tmp_path / "inside")
    t0 = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, out, marker, t0],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), results      # no FileExistsError inside
    assert sum(int(o) for o, _ in results) > 0
    assert os.listdir(tmp_path) == []


def test_leftovers_of_a_killed_run_are_cleaned_by_the_next_claim(tmp_path):
    """A SIGKILLed run leaves its lock file (unlocked), its temporaries and, if it died
    while renaming a group, the group's files recorded in the lock file: the next claim of
    the output removes them. Temporaries of a live process are left alone."""
    dead = 2 ** 22 + 12345                      # above the default pid_max: never alive
    out = tmp_path / "t.mrc"
    side = tmp_path / "t_w.mrc"
    side.write_text("side output of the killed run")
    (tmp_path / ".t.mrc.lock").write_text("%d %s\ncommit %s\ncommit %s\n"
                                          % (dead, socket.gethostname(), side, out))
    stale = tmp_path / (".t.mrc.%d.0123abcd.partial" % dead)
    stale.write_text("half-written")
    live = tmp_path / (".other.mrc.%d.0123abcd.partial" % os.getpid())
    live.write_text("another output being written")
    with outputs.run_scope():
        outputs.claim(out)
        assert not side.exists() and not stale.exists() and live.exists()
    assert sorted(os.listdir(tmp_path)) == [live.name]


def test_claimed_folder_removes_dead_temporaries_inside(tmp_path):
    folder = tmp_path / "Extract"
    (folder / "Subtomograms" / "TS_01").mkdir(parents=True)
    dead = 2 ** 22 + 777
    stale = folder / "Subtomograms" / "TS_01" / (".1_stack2d.mrcs.%d.00ff00ff.partial" % dead)
    stale.write_text("x")
    keep = folder / "Subtomograms" / "TS_01" / "1_stack2d.mrcs"
    keep.write_text("finished stack")
    with outputs.run_scope():
        outputs.claim(folder, "output folder", folder=True)
    assert not stale.exists() and keep.exists()


def test_group_commit_is_all_or_nothing(tmp_path, monkeypatch):
    files = [tmp_path / n for n in ("a.png", "a.json", "a.mrc")]
    with outputs.run_scope():
        for f in files:
            outputs.claim(f)
        temps = [outputs.temp_path(f) for f in files]
        real = outputs.commit_temp

        def failing(tmp, final):
            if final == files[-1]:
                raise OSError(28, "No space left on device", tmp)
            return real(tmp, final)
        monkeypatch.setattr(outputs, "commit_temp", failing)
        with pytest.raises(OSError) as exc:
            outputs.commit_group(list(zip(temps, files)))
        assert outputs.describe_os_error(exc.value) == "%s: No space left on device" % files[-1]
        assert [f for f in files if f.exists()] == []
    assert os.listdir(tmp_path) == []


# A signal sent from inside the step (so it lands exactly there, every time): before the
# fix, one between creating a temporary and registering it left the temporary behind (seen
# once in CI: a SIGTERM during `mask --save-mask`), and one between forgetting a temporary
# and removing it did the same.
_SIGNAL_INSIDE = textwrap.dedent("""
    import os, signal, sys
    from cryoprocs.convert import outputs
    outputs.install_signal_handlers("test")
    step, out = sys.argv[1], sys.argv[2]
    sent = []

    def wrap(real, after=False):
        def inside(*a):
            result = real(*a) if after else None
            if not sent:
                sent.append(1)
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):           # let the interpreter run the handler here
                    pass
            return result if after else real(*a)
        return inside
    with outputs.run_scope():
        outputs.claim(out)
        if step == "create":
            outputs._create_file = wrap(outputs._create_file, after=True)
            outputs.temp_path(out)
        elif step == "discard":
            tmp = outputs.temp_path(out)
            outputs._remove_path = wrap(outputs._remove_path)
            outputs.discard_temp(tmp)
        else:                                   # folder replacing a folder, --overwrite
            os.makedirs(out + ".d")
            open(os.path.join(out + ".d", "old"), "w").close()
            tmp = outputs.temp_dir(out + ".d")
            open(os.path.join(tmp, "new"), "w").close()
            os.replace = wrap(os.replace)
            outputs.commit_temp(tmp, out + ".d")
    print("not interrupted")
    """)


@pytest.mark.parametrize("step", ["create", "discard", "commit-folder"])
def test_a_signal_inside_a_temporary_step_leaves_no_temporary(tmp_path, step):
    out = tmp_path / "out.mrc"
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_INSIDE, step, str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + 15, proc.stderr
    assert "interrupted by SIGTERM" in proc.stderr and "Traceback" not in proc.stderr
    left = sorted(os.listdir(tmp_path))
    if step == "commit-folder":                 # the rename completed: the new folder stays
        assert left == ["out.mrc.d"] and os.listdir(tmp_path / "out.mrc.d") == ["new"]
    else:
        assert left == [], left


def test_safe_name_is_unique_for_distinct_ids():
    ids = ["TS_01", "TS 01", "TS/01", "TS:01", "TS_01_", ".TS_01", "..", "", "émile", "TS-01.a"]
    names = [safe_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert safe_name("TS_01") == "TS_01" and safe_name("TS-01.a") == "TS-01.a"
    assert all(n and not n.startswith(".") and "/" not in n and " " not in n for n in names)
    assert safe_name("TS 01") == safe_name("TS 01")          # stable
