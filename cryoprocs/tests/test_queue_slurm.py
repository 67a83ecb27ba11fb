"""Every per-item protocol on a real SLURM queue (issue 12), on the demo's real data.

A single-node SLURM is started by ``cryoprocs/tests/slurm/up.sh`` (installed with apt-get
when missing; the module is skipped, with the reason, only where that is impossible: not root
and no SLURM). Three crops of the real HIV-1 VLP tomogram are the items. Noise fill, peak
picking, 2D extraction, reconstruction and movie export each run three ways: locally
(threads), as one SLURM job for the whole protocol, and with "Use queue for jobs" (one SLURM
job per item). The tests assert that every run finished in the project database with its
endTime and a clean run.stderr, that the queued outputs equal the local ones exactly, that
per-item runs submitted one job per item (the job ids pyworkflow logged, looked up with
``scontrol``), and that a job cancelled with ``scancel`` fails its run, whose "Continue"
redoes only the cancelled item.
"""
import glob
import os
import time

import mrcfile
import numpy as np
import pytest

from cryoprocs import constants
from cryoprocs.scipion_runs import run_problems
from cryoprocs.tests import queue_inputs
from cryoprocs.tests import shared_data_root
from cryoprocs.tests import slurm

pytestmark = pytest.mark.slow

THREADS = 4                  # 3 item steps at once: the 3 items run concurrently
N_ITEMS = 3
PROTOCOLS = ("noisefill", "pick", "extract", "reconstruct", "movie")
MODES = ("local", "whole", "items")


# ============================================================================ fixtures
@pytest.fixture(scope="module")
def cluster():
    try:
        folder = slurm.start(cpus=64, memory_mb=64000)
    except slurm.SlurmUnavailable as exc:
        pytest.skip("SLURM cannot be started here: %s" % exc)
    try:
        yield folder
    finally:
        slurm.stop(folder)


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The project, its inputs and every run of this module (launched together)."""
    from cryoprocs.demo.data import DemoDataError
    from pyworkflow.project import Manager

    root = shared_data_root()
    try:
        data = queue_inputs.locate_data(os.path.join(root, "real") if root else None)
    except DemoDataError as exc:
        pytest.skip("the demo's real data are not available: %s" % exc)
    tmp = tmp_path_factory.mktemp("queue")
    hosts = slurm.hosts_conf(str(tmp / "hosts.conf"), memory_mb=1000, hold=True)
    proj = Manager().createProject("TestCryoprocsSlurmQueue", hostsConf=hosts)
    os.chdir(proj.path)
    t0 = time.time()
    # a NaN in one score map: the pick runs need their "Replace non-finite values?" switch
    # to reach the command in every mode
    crops = queue_inputs.write_crops(data, str(tmp / "inputs"), n=N_ITEMS, nan_score_voxel=True)
    inputs = _import_inputs(proj, crops, str(tmp))
    setup_s = time.time() - t0
    launched, whole_ids = {}, {}
    for mode in ("whole", "items", "local"):       # queued first: they wait on polls
        for name in PROTOCOLS:
            prot = _new(proj, name, inputs, mode)
            proj.launchProtocol(prot)
            launched[(name, mode)] = prot
            if mode == "whole":
                whole_ids[name] = [int(j) for j in prot.getJobIds()]
    hold = str(tmp / "hold")
    open(hold, "w").close()
    cancel = _new(proj, "noisefill", inputs, "items", hold=hold)
    cancel.setObjLabel("noise fill, one job cancelled")
    proj.launchProtocol(cancel)
    cancelled = _cancel_one_running_job(cancel, hold)
    slurm.wait_runs(proj, list(launched.values()) + [cancel], timeout=900)
    run_s = time.time() - t0 - setup_s
    yield {"project": proj, "runs": launched, "whole_ids": whole_ids, "inputs": inputs,
           "crops": crops,
           "cancel": cancel, "cancelled": cancelled, "setup_s": setup_s, "run_s": run_s}


# ============================================================================ inputs
def _launch_all(proj, prots):
    for p in prots:
        proj.launchProtocol(p)
    slurm.wait_runs(proj, prots)
    for p in prots:
        assert not run_problems(proj, p), (p.getRunName(), run_problems(proj, p))


def _import_inputs(proj, crops, tmp):
    """Import the crops, their masks and score/angle maps, simulate their tilt series and
    import the particles (locally, in this project)."""
    from tomo.protocols import ProtImportTomograms, ProtImportTomomasks
    from cryoprocs.convert import relion5
    from cryoprocs.protocols import (ProtCryoprocsImportRelion5,
                                     ProtCryoprocsSimulateTiltSeries)

    vs = crops["voxel_size"]
    tomos = proj.newProtocol(ProtImportTomograms, filesPath=crops["tomograms"],
                             filesPattern="*.mrc", samplingRate=vs)
    _launch_all(proj, [tomos])
    masks = proj.newProtocol(ProtImportTomomasks, filesPath=crops["masks"],
                             filesPattern="*.mrc", inputTomos=tomos.Tomograms)
    maps = {k: proj.newProtocol(ProtImportTomograms, filesPath=crops["scores"],
                                filesPattern="%s_{TS}.mrc" % k, samplingRate=vs)
            for k in ("scores", "angles")}
    sim = proj.newProtocol(ProtCryoprocsSimulateTiltSeries, inputTomograms=tomos.Tomograms,
                           tiltMin=-60, tiltMax=60, tiltStep=6)
    _launch_all(proj, [masks, maps["scores"], maps["angles"], sim])
    star = os.path.join(proj.path, sim._getExtraPath("simulated", "tomograms.star"))
    sizes = {r["rlnTomoName"]: [int(r[k]) for k in ("rlnTomoSizeX", "rlnTomoSizeY",
                                                    "rlnTomoSizeZ")]
             for _, r in relion5.read_tomograms(star).iterrows()}
    particles = queue_inputs.write_particles_star(crops, os.path.join(tmp, "particles.star"), sizes)
    imp = proj.newProtocol(ProtCryoprocsImportRelion5, tomogramsFile=star,
                           particlesFile=particles, projectDir=proj.path,
                           inputTomograms=tomos.Tomograms)
    _launch_all(proj, [imp])
    return {"tomograms": tomos.Tomograms, "masks": masks.tomomasks,
            "scores": maps["scores"].Tomograms, "angles": maps["angles"].Tomograms,
            "angle_list": crops["angle_list"],
            "coordinates": getattr(imp, constants.OUTPUT_COORDINATES),
            "tilt_series": getattr(imp, constants.OUTPUT_TILT_SERIES),
            "ctf": getattr(imp, constants.OUTPUT_CTF_SERIES)}


def _new(proj, name, inputs, mode, hold=""):
    """A protocol of the module's five, set up for ``mode``."""
    from cryoprocs import protocols
    if name == "noisefill":
        prot = proj.newProtocol(protocols.ProtCryoprocsMaskedTomogramNoiseFill,
                                inputTomograms=inputs["tomograms"], inputMasks=inputs["masks"])
    elif name == "pick":
        prot = proj.newProtocol(protocols.ProtCryoprocsScoresPeakPicking,
                                inputScoreMaps=inputs["scores"], inputAngleMaps=inputs["angles"],
                                inputTomograms=inputs["tomograms"],
                                angleList=inputs["angle_list"], minDistance=15.0, boxSize=31,
                                replaceNonFinite=True)
    elif name == "extract":
        prot = proj.newProtocol(protocols.ProtCryoprocsExtractSubtomos,
                                extractionMode=constants.EXTRACT_MODE_STACK2D,
                                inputCoordinates=inputs["coordinates"],
                                inputTiltSeries=inputs["tilt_series"],
                                inputCtfTomoSeries=inputs["ctf"], boxSize=16, minFrames=5)
    elif name == "reconstruct":
        prot = proj.newProtocol(protocols.ProtCryoprocsReconstructSubtomoAverage,
                                inputCoordinates=inputs["coordinates"],
                                inputTiltSeries=inputs["tilt_series"],
                                inputCtfTomoSeries=inputs["ctf"], boxSize=20)
    else:
        # with the particles drawn: their files are written by the protocol, the drawing
        # is done by each item's command (job)
        prot = proj.newProtocol(protocols.ProtCryoprocsExportMovie, inputData=inputs["tomograms"],
                                inputCoordinates=inputs["coordinates"], particleRadius=60.0,
                                labelFrames=True, scaleBar=True)
    prot.numberOfThreads.set(THREADS)
    prot.setObjLabel("%s (%s)" % (name, mode))
    if mode != "local":
        prot._useQueue.set(True)
        prot.setQueueParams(["debug", {"JOB_MEMORY": "1000", "JOB_TIME": "1",
                                       "QUEUE_FOR_JOBS": "Y" if mode == "items" else "N",
                                       "HOLD_FILE": hold}])
    return prot


def _cancel_one_running_job(prot, hold, timeout=300):
    """Wait until the run's three item jobs are RUNNING (they wait on the hold file), cancel
    the second one with scancel, then release the others. Returns its job id."""
    import subprocess
    prefix = "%s-" % prot.strId()
    t0 = time.time()
    while True:
        jobs = {j: n for j, (n, st) in slurm.queued_jobs().items()
                if n.startswith(prefix) and st == "RUNNING"}
        if len(jobs) == N_ITEMS:
            break
        if time.time() - t0 > timeout:
            raise TimeoutError("the item jobs of %s did not all start: %s"
                               % (prot.getRunName(), slurm.queued_jobs()))
        time.sleep(0.2)
    victim = sorted(jobs, key=lambda j: jobs[j])[1]
    subprocess.run(["scancel", str(victim)], check=True)
    time.sleep(1.0)
    os.remove(hold)
    return victim


# ============================================================================ outputs
def _abs(proj, path):
    return path if os.path.isabs(path) else os.path.join(proj.path, path)


def _outputs(proj, name, prot):
    """What a run produced, as comparable values (arrays and bytes), keyed by item."""
    out = {}
    if name == "noisefill":
        for t in getattr(prot, constants.OUTPUT_NOISE_FILLED_TOMOS).iterItems():
            out[t.getTsId()] = mrcfile.read(_abs(proj, t.getFileName()))
    elif name == "pick":
        from cryoprocs.convert.scipion import coordinate_blc
        for c in getattr(prot, constants.OUTPUT_COORDINATES).iterCoordinates():
            out[(c.getTomoId(), c.getObjId())] = (np.array(coordinate_blc(c)), c.getScore(),
                                                  np.array(c.getMatrix()))
        for f in glob.glob(_abs(proj, prot._getExtraPath("*_picks.csv"))):
            out[os.path.basename(f)] = open(f, "rb").read()
    elif name == "extract":
        for s in getattr(prot, constants.OUTPUT_SUBTOMOGRAMS).iterItems():
            path = _abs(proj, s.getFileName())
            out[os.path.relpath(path, _abs(proj, prot._getExtraPath()))] = mrcfile.read(path)
    elif name == "reconstruct":
        for f in ("merged.mrc", "half1.mrc", "half2.mrc"):
            out[f] = mrcfile.read(_abs(proj, prot._getExtraPath(f)))
        out["fsc"] = np.array(getattr(prot, constants.OUTPUT_FSC).getData()[1])
    else:
        for f in prot.getMovieFiles():
            out[os.path.basename(f)] = open(_abs(proj, f), "rb").read()
    return out


def _assert_equal(a, b, what):
    assert sorted(a, key=str) == sorted(b, key=str), what
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, tuple):
            for x, y in zip(va, vb):
                np.testing.assert_array_equal(x, y, err_msg="%s %s" % (what, k))
        elif isinstance(va, bytes):
            assert va == vb, "%s %s differs" % (what, k)
        else:
            np.testing.assert_array_equal(va, vb, err_msg="%s %s" % (what, k))


def _job_items(job_id, names):
    """The items (tsIds) a job's script names."""
    info = slurm.job_info(job_id)
    with open(info["Command"]) as fh:
        script = fh.read()
    return [n for n in names if n in script]


# ============================================================================ tests
def test_every_run_finished_with_end_time_and_clean_log(runs):
    proj = runs["project"]
    for (name, mode), prot in runs["runs"].items():
        assert prot.isFinished(), (name, mode, prot.getStatus(), prot.getErrorMessage())
        assert run_problems(proj, prot) == [], (name, mode)
    # the whole module (setup, 16 runs, the cancelled run and its continuation) in < 4 min
    print("setup %.0f s, runs %.0f s" % (runs["setup_s"], runs["run_s"]))


@pytest.mark.parametrize("name", PROTOCOLS)
def test_queued_outputs_equal_local_outputs(runs, name):
    proj = runs["project"]
    local = _outputs(proj, name, runs["runs"][(name, "local")])
    n = {"noisefill": N_ITEMS, "movie": N_ITEMS, "reconstruct": 4}.get(name)
    if n is not None:
        assert len(local) == n, sorted(local)
    assert local, name
    for mode in ("whole", "items"):
        _assert_equal(_outputs(proj, name, runs["runs"][(name, mode)]), local,
                      "%s (%s vs local)" % (name, mode))
    if name == "movie":                   # every item's command drew its particles
        for mode in MODES:
            infos = runs["runs"][(name, mode)]._readInfos()
            assert len(infos) == N_ITEMS and all(
                i["particles"]["drawn"] > 0 for i in infos), (mode, infos)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_one_slurm_job_per_item(runs, name):
    proj, names = runs["project"], runs["crops"]["names"]
    prot = runs["runs"][(name, "items")]
    ids = slurm.launched_job_ids(proj, prot)
    final = 1 if name == "reconstruct" else 0           # reconstruct's final sum
    assert len(ids) == N_ITEMS + final, ids
    items = []
    for j in ids:
        info = slurm.job_info(j)
        assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", info
        assert info["JobName"].startswith("%s-" % prot.strId()), info["JobName"]
        assert os.path.samefile(info["WorkDir"], proj.path)
        items += _job_items(j, names) or ["final"]
    assert sorted(items) == sorted(names + ["final"] * final)
    # the whole-protocol run is one job running the protocol itself, with no item jobs
    whole = runs["runs"][(name, "whole")]
    assert len(runs["whole_ids"][name]) == 1 and not slurm.launched_job_ids(proj, whole)
    info = slurm.job_info(runs["whole_ids"][name][0])
    assert info["JobName"] == whole.strId() and info["JobState"] == "COMPLETED", info


@pytest.mark.parametrize("mode", ("local", "whole", "items"))
def test_nonfinite_switch_reaches_the_command_in_every_mode(runs, mode):
    """The pick runs (one score map with a NaN voxel, "Replace non-finite values?" on)
    finished in every mode (test_every_run_finished...) with equal outputs
    (test_queued_outputs_equal_local_outputs); the command's warning of the replacement is
    in the run's logs (the job logs with one job per item)."""
    proj = runs["project"]
    prot = runs["runs"][("pick", mode)]
    logs = ""
    for root, _, files in os.walk(_abs(proj, prot._getLogsPath())):
        for f in files:
            if f.endswith((".log", ".out", ".err", ".stdout", ".stderr")) or "job" in f:
                with open(os.path.join(root, f), errors="replace") as fh:
                    logs += fh.read()
    assert "1 non-finite voxel (NaN or infinite; the first at [z, y, x] = [0, 0, 0]) " \
        "replaced by the mean of its finite voxels" in logs, logs[-3000:]


def test_scancel_fails_the_run_and_continue_redoes_only_that_item(runs):
    from pyworkflow.protocol.constants import MODE_RESUME
    proj, prot, names = runs["project"], runs["cancel"], runs["crops"]["names"]
    victim = runs["cancelled"]
    assert prot.isFailed(), prot.getStatus()
    lost = _job_items(victim, names)
    assert len(lost) == 1 and slurm.job_info(victim)["JobState"] == "CANCELLED"
    assert "tsId %s" % lost[0] in prot.getErrorMessage(), prot.getErrorMessage()
    outs = {n: _abs(proj, prot._getExtraPath("%s_noisefilled.mrc" % n)) for n in names}
    assert not os.path.exists(outs[lost[0]])
    kept = {n: os.stat(p).st_mtime_ns for n, p in outs.items() if n != lost[0]}
    before = set(slurm.launched_job_ids(proj, prot))
    stderr = _abs(proj, prot.getStderrLog())
    failed_log = os.path.getsize(stderr)       # the failed step's traceback stays above
    prot.runMode.set(MODE_RESUME)              # the GUI's "Continue"
    proj.launchProtocol(prot)
    slurm.wait_runs(proj, [prot])
    assert prot.isFinished(), (prot.getStatus(), prot.getErrorMessage())
    assert [p for p in run_problems(proj, prot) if not p.startswith("Traceback")] == []
    with open(stderr, errors="replace") as fh:
        fh.seek(failed_log)
        assert "Traceback" not in fh.read()
    new = sorted(set(slurm.launched_job_ids(proj, prot)) - before)
    assert len(new) == 1 and _job_items(new[0], names) == lost, new
    assert {n: os.stat(outs[n]).st_mtime_ns for n in kept} == kept
    _assert_equal(_outputs(proj, "noisefill", prot),
                  _outputs(proj, "noisefill", runs["runs"][("noisefill", "local")]),
                  "continued noise fill vs local")


def test_readme_hosts_conf_is_the_tested_one(tmp_path):
    """The README's SLURM hosts.conf is the one these tests use (without the test-only hold
    line), and pyworkflow reads it as a SLURM queue with per-item jobs available."""
    from pyworkflow.protocol.hosts import HostConfig
    from cryoprocs.tests.readme_examples import readme_blocks
    blocks = [b for b in readme_blocks() if b.section == "Running on a cluster"
              and b.language == "ini"]
    assert len(blocks) == 1
    tested = slurm.hosts_conf(str(tmp_path / "hosts.conf"), memory_mb=8000)
    assert blocks[0].text == open(tested).read()
    host = HostConfig.load(tested)["localhost"]
    queue = host.getQueueSystem()
    assert queue.getName() == "SLURM" and "squeue -h -j" in queue.checkCommand.get()
    assert "--export=ALL" in queue.submitTemplate.get()
    params = {p[0]: p[1] for p in queue.queues["debug"]}
    assert params["QUEUE_FOR_JOBS"] == "N" and params["JOB_MEMORY"] == "8000"
