"""A real single-node SLURM for the cluster tests and benchmark (``up.sh`` / ``down.sh``),
the Scipion host configuration that uses it, and helpers to follow queued runs.

No pyworkflow import at module level: the benchmark loads this before setting up Scipion's
environment.
"""
import os
import re
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))

#: the SLURM host configuration for Scipion (``hosts.conf``), as in the README. The hold
#: file (``hold=True``) is a test-only addition: a job waits while the file named by the
#: queue parameter HOLD_FILE exists, so a test can cancel a job that is surely running.
HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SLURM
MANDATORY = False
SUBMIT_COMMAND = sbatch %_(JOB_SCRIPT)s
CANCEL_COMMAND = scancel %_(JOB_ID)s
CHECK_COMMAND = squeue -h -j %_(JOB_ID)s
SUBMIT_TEMPLATE = #!/bin/bash
    #SBATCH -J %_(JOB_NAME)s
    #SBATCH -o %_(JOB_LOGS)s.out
    #SBATCH -e %_(JOB_LOGS)s.err
    #SBATCH --export=ALL
    #SBATCH -p %_(JOB_QUEUE)s
    #SBATCH --time=%_(JOB_TIME)s:00:00
    #SBATCH --ntasks=%_(JOB_NODES)d
    #SBATCH --cpus-per-task=%_(JOB_THREADS)d
    #SBATCH --mem=%_(JOB_MEMORY)s
    cd $SLURM_SUBMIT_DIR
{hold}    %_(JOB_COMMAND)s
QUEUES = {{"debug": [["JOB_MEMORY", "{memory}", "Memory (MB)", "Memory of one job in MB"], ["JOB_TIME", "24", "Time (hours)", "Wall-time limit of one job in hours"], ["QUEUE_FOR_JOBS", "N", "Use queue for jobs", "Send individual jobs to queue"]{hold_param}]}}
"""

_HOLD_LINE = ('    if [ -n "%_(HOLD_FILE)s" ]; then while [ -e "%_(HOLD_FILE)s" ]; do sleep 0.2; '
              'done; fi\n')
_HOLD_PARAM = ', ["HOLD_FILE", "", "Hold file (tests)", "The job waits while this file exists"]'


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (the message says why)."""


def hosts_conf(path, memory_mb=8000, hold=False):
    """Write the SLURM ``hosts.conf`` (queue ``debug``) to ``path``; returns ``path``."""
    with open(path, "w") as fh:
        fh.write(HOSTS_CONF.format(hold=_HOLD_LINE if hold else "", memory=int(memory_mb),
                                   hold_param=_HOLD_PARAM if hold else ""))
    return path


def start(cpus=None, memory_mb=None, timeout=600):
    """Start a single-node SLURM with ``up.sh`` (installing it with apt-get when missing and
    root). Returns its state folder; sets ``SLURM_CONF`` in ``os.environ``.

    Raises
    ------
    SlurmUnavailable
        up.sh says SLURM cannot be installed or started here (exit status 3), or failed.
    """
    env = dict(os.environ)
    if cpus:
        env["CRYOPROCS_SLURM_CPUS"] = str(int(cpus))
    if memory_mb:
        env["CRYOPROCS_SLURM_MEMORY_MB"] = str(int(memory_mb))
    try:
        res = subprocess.run(["bash", os.path.join(HERE, "up.sh")], capture_output=True,
                             text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmUnavailable("up.sh did not run: %s" % exc)
    if res.returncode != 0:
        raise SlurmUnavailable((res.stderr.strip().splitlines() or ["up.sh failed"])[-1])
    folder = res.stdout.strip().splitlines()[-1]
    os.environ["SLURM_CONF"] = os.path.join(folder, "slurm.conf")
    return folder


def stop(folder, keep=False):
    """Stop the daemons started by :func:`start` (``down.sh``) and remove the folder."""
    env = dict(os.environ, KEEP="1" if keep else "0")
    subprocess.run(["bash", os.path.join(HERE, "down.sh"), folder], env=env,
                   capture_output=True, timeout=120)
    if os.environ.get("SLURM_CONF", "").startswith(folder):
        os.environ.pop("SLURM_CONF")


def job_info(job_id):
    """``scontrol show job`` of a job as a dict (empty when SLURM no longer knows it)."""
    res = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        return {}
    return dict(re.findall(r"(\w+)=(\S*)", res.stdout))


def queued_jobs():
    """``{job id: (name, state)}`` of the jobs SLURM lists as pending or running."""
    res = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True)
    jobs = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            jobs[int(parts[0])] = (parts[1], parts[2])
    return jobs


def launched_job_ids(project, prot):
    """Job ids that pyworkflow logged as submitted for a run ("Launched job with id N" in
    its run.stdout: every job of "Use queue for jobs"; with the whole protocol queued, the
    protocol's own job id is its stored job id)."""
    path = os.path.join(project.getPath(), prot.getStdoutLog())
    if not os.path.exists(path):
        return []
    with open(path, errors="replace") as fh:
        return [int(m) for m in re.findall(r"Launched job with id (\d+)", fh.read())]


def wait_runs(project, prots, timeout=600, poll=1.0):
    """Wait until no run of ``prots`` is active (pyworkflow's launch returns at submission
    for queued runs), refreshing each from its run database. Returns the seconds waited."""
    t0 = time.time()
    while True:
        active = []
        for p in prots:
            project._updateProtocol(p)
            if p.isActive():
                active.append(p)
        if not active:
            project.mapper.commit()
            return time.time() - t0
        if time.time() - t0 > timeout:
            raise TimeoutError("runs still active after %d s: %s"
                               % (timeout, ", ".join(p.getRunName() for p in active)))
        time.sleep(poll)
