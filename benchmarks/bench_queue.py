"""Cluster benchmark: 8 tomograms noise-filled through a local SLURM, one job per tomogram
("Use queue for jobs"), against the same run with local threads.

The tomograms are 8 crops (72^3 voxels) of the demo's real HIV-1 VLP tomogram with their VLP
masks (cryoprocs/tests/queue_inputs.py); the SLURM is the single-node one of the tests
(cryoprocs/tests/slurm/up.sh: installed with apt-get when missing, which needs root). Both
runs use the same thread count, so the same number of tomograms is processed at once.

Printed: both wall times (launch to the run finished in the project database), and per
tomogram the time of its step locally and through the queue. The per-job overhead is the
difference of the mean step times. It is decomposed with the jobs' states, sampled with
``squeue`` every 0.1 s during the queued run: the submission (step start to the job listed),
SLURM's wait (listed to running), the longer run of the job than of the local command
(running to gone, minus the local step) and pyworkflow's polling lag (job gone to the step's
end: pyworkflow checks a job 3 s after submitting it, then 6 s later, 9 s later... up to
every 300 s).

Without SLURM and without the rights to install it (root), it prints SKIPPED and the reason.
Run on a quiet machine:
``flock /tmp/cryoprocs-heavy.lock .venv/bin/python benchmarks/bench_queue.py``.
"""
import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _parse_time(value):
    return dt.datetime.fromisoformat(str(value)).timestamp()


def _steps(prot, func):
    """``{tsId: (start, end)}`` (epoch seconds) of a run's item steps."""
    import json
    out = {}
    for step in prot.loadSteps():
        if step.funcName.get() == func and step.endTime.get():
            tsId = json.loads(step.argsStr.get())[0]
            out[tsId] = (_parse_time(step.initTime.get()), _parse_time(step.endTime.get()))
    return out


class JobWatcher(threading.Thread):
    """Samples ``squeue`` every ``period`` s: per job id, when it was first listed, first
    RUNNING and last listed (epoch seconds)."""

    def __init__(self, period=0.1):
        super().__init__(daemon=True)
        self.period, self.seen, self._done = period, {}, threading.Event()

    def run(self):
        import subprocess
        while not self._done.is_set():
            now = time.time()
            res = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True,
                                 text=True)
            for line in res.stdout.splitlines():
                job, state = line.split()[:2]
                rec = self.seen.setdefault(int(job), {"listed": now})
                if state == "RUNNING":
                    rec.setdefault("running", now)
                rec["last"] = now
            time.sleep(self.period)

    def stop(self):
        self._done.set()
        self.join()


def _run(proj, prot, slurm):
    t0 = time.time()
    proj.launchProtocol(prot)
    slurm.wait_runs(proj, [prot], timeout=3600, poll=0.2)
    wall = time.time() - t0
    if not prot.isFinished():
        raise SystemExit("%s did not finish: %s" % (prot.getRunName(), prot.getErrorMessage()))
    return wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tomograms", type=int, default=8, help="number of tomograms (<= 8)")
    ap.add_argument("--threads", type=int, default=3,
                    help="the run's threads: threads - 1 tomograms at once (default 3)")
    ap.add_argument("--data", help="folder with the demo's real data (default: the test "
                                   "data when present, else the demo's download cache)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per mode, alternating; the last ones are reported (default 2)")
    ap.add_argument("--workdir", help="keep the project here (default: a temporary folder)")
    args = ap.parse_args(argv)

    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="cryoprocs_bench_queue_"))
    from cryoprocs.scipion_env import apply_scipion_environment
    apply_scipion_environment(os.path.join(work, "scipion"))
    from cryoprocs.tests import queue_inputs
    from cryoprocs.tests import shared_data_root
    from cryoprocs.tests import slurm

    root = shared_data_root()
    data = queue_inputs.locate_data(args.data or (os.path.join(root, "real") if root else None))
    crops = queue_inputs.write_crops(data, os.path.join(work, "inputs"), n=args.tomograms)
    try:
        folder = slurm.start(cpus=16, memory_mb=16000)
    except slurm.SlurmUnavailable as exc:        # e.g. not root: `make bench` goes on
        print("bench_queue: SKIPPED, %s" % exc)
        return
    try:
        report(work, crops, args, slurm)
    finally:
        slurm.stop(folder)


def report(work, crops, args, slurm):
    from pyworkflow.project import Manager
    from tomo.protocols import ProtImportTomograms, ProtImportTomomasks

    from cryoprocs.protocols import ProtCryoprocsMaskedTomogramNoiseFill

    hosts = slurm.hosts_conf(os.path.join(work, "hosts.conf"), memory_mb=1000)
    proj = Manager().createProject("bench_queue_%d" % os.getpid(), hostsConf=hosts)
    os.chdir(proj.path)
    tomos = proj.newProtocol(ProtImportTomograms, filesPath=crops["tomograms"],
                             filesPattern="*.mrc", samplingRate=crops["voxel_size"])
    _run(proj, tomos, slurm)
    masks = proj.newProtocol(ProtImportTomomasks, filesPath=crops["masks"],
                             filesPattern="*.mrc", inputTomos=tomos.Tomograms)
    _run(proj, masks, slurm)
    runs = {}
    watcher = JobWatcher()
    watcher.start()
    # each mode twice, alternating; the second runs are reported (warm file and import
    # caches for both)
    for mode in ("local", "items") * max(1, args.repeat):
        prot = proj.newProtocol(ProtCryoprocsMaskedTomogramNoiseFill,
                                inputTomograms=tomos.Tomograms, inputMasks=masks.tomomasks,
                                numberOfThreads=args.threads)
        if mode == "items":
            prot._useQueue.set(True)
            prot.setQueueParams(["debug", {"JOB_MEMORY": "1000", "JOB_TIME": "1",
                                           "QUEUE_FOR_JOBS": "Y"}])
        runs[mode] = (prot, _run(proj, prot, slurm))
    watcher.stop()
    local, queued = runs["local"][0], runs["items"][0]
    lsteps, qsteps = _steps(local, "noiseFillStep"), _steps(queued, "noiseFillStep")
    jobs = {}
    for j in slurm.launched_job_ids(proj, queued):
        with open(slurm.job_info(j)["Command"]) as fh:
            script = fh.read()
        name = next(n for n in crops["names"] if n + "_noisefilled" in script)
        rec = watcher.seen[j]
        jobs[name] = (rec["listed"], rec.get("running", rec["listed"]), rec["last"])
    n = len(crops["names"])
    lstep = statistics.mean(e - s for s, e in lsteps.values())
    qstep = statistics.mean(e - s for s, e in qsteps.values())
    submit = statistics.mean(jobs[k][0] - qsteps[k][0] for k in jobs)
    wait = statistics.mean(j[1] - j[0] for j in jobs.values())
    run = statistics.mean(j[2] - j[1] for j in jobs.values())
    poll = statistics.mean(qsteps[k][1] - jobs[k][2] for k in jobs)
    overhead = qstep - lstep
    print("bench_queue: noise fill of %d tomograms (72^3 crops of the real HIV VLP tomogram), "
          "threads %d (%d tomograms at once), run %d of each mode"
          % (n, args.threads, max(1, args.threads - 1), max(1, args.repeat)))
    print("  local threads:         wall %6.1f s, step per tomogram %5.2f s (mean)"
          % (runs["local"][1], lstep))
    print("  SLURM, job per item:   wall %6.1f s, step per tomogram %5.2f s (mean, %d jobs)"
          % (runs["items"][1], qstep, len(jobs)))
    print("  per-job overhead:      %5.2f s (step through the queue - step locally): submission "
          "%.2f s, SLURM wait %.2f s, pyworkflow polling lag %.2f s; the job itself ran %.2f s "
          "(the local command's step %.2f s; squeue sampled every 0.1 s)"
          % (overhead, submit, wait, poll, run, lstep))
    print("  pyworkflow's polling:  %.2f s per job = %.0f %% of the per-job overhead; wall time "
          "%.1f s vs %.1f s (%.2fx)" % (poll, 100.0 * poll / overhead if overhead > 0 else 0.0,
                                        runs["items"][1], runs["local"][1],
                                        runs["items"][1] / runs["local"][1]))
    print("  pyworkflow checks a job %s s after submitting it: a job of 10 s / 60 s / 600 s "
          "is seen as done after %g / %g / %g s"
          % (", ".join("%g" % t for t in poll_times(6)), seen_after(10), seen_after(60),
             seen_after(600)))


def poll_times(n):
    """The first ``n`` times (s after submission) at which pyworkflow 3.11's
    QueueStepExecutor checks a job: sleep 3 s, then 3 s longer each time, at most 300 s."""
    times, t, wait = [], 0, 3
    while len(times) < n:
        t += wait
        times.append(t)
        wait = wait + 3 if wait < 300 else wait
    return times


def seen_after(duration):
    return next(t for t in poll_times(10 ** 4) if t >= duration)


if __name__ == "__main__":
    main()
