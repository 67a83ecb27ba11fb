"""Run documentation examples as written: the harness of test_readme.py and test_examples.py.

What runs (from README.md, parsed by :func:`readme_blocks`)
------------------------------------------------------------
* Every fenced block in a shell language (``bash``, ``sh``, ``shell``, ``console`` or no
  language) that invokes ``cryoprocs`` is run by bash (``-e -o pipefail``, each command traced
  with its README line) in a scratch folder, with the virtual environment's ``bin`` first on
  PATH, no ``SCIPION_*`` variable and ``CRYOPROCS_HOME`` inside the scratch folder: what a
  user gets in a fresh shell after ``make venv``. The lines of a block run in order, as a
  user pasting the block would run them (an output written twice is an error).
* Shell blocks that never invoke ``cryoprocs`` (``make``, ``git``, ``pip``, ``scipion3``
  installation commands) are not run. A line ``<!-- readme-test: skip REASON -->`` right
  above a fence skips a block that needs other software (say why).
* Every ``python`` block is a batch script. One whose first line is ``# NAME.py ...`` is
  saved as NAME.py into the scratch folder of each shell block that names NAME.py, and runs
  there; a python block that no shell block runs is run with ``cryoprocs python``.
* ``<command>`` in a shell line stands for every sub-command of ``cryoprocs``
  (:data:`cryoprocs.cli.COMMANDS`): the line runs once per sub-command.
* Indented (unfenced) code blocks that invoke ``cryoprocs`` are refused: they would escape
  the tests.

Data: the only substitution
---------------------------
:data:`DATA` maps every input file name the README's examples use to real data of the
shared data folder (``cryoprocs.tests.shared_data``: the demo's real data in ``real/``, and
the reference inputs of the commands whose inputs the demo data lack: template-matching maps
in ``cryocat_peaks/`` and a RELION 5 project in ``relion5_extract/``) or to a file derived
from it. A relative name is made available in the scratch folder of each block that uses it
(a symbolic link, or a derived file), so the command text is unchanged; an absolute name
(``/data/...``, used by batch scripts) is materialised under the scratch folder and replaced
in the text. A URL under one of :data:`URLS` (e.g. ``https://host/dataset/TS_01.zarr``)
is served from a local HTTP server on 127.0.0.1 for the block's run: the rest of the URL is a
:data:`DATA` name made in the served folder, and the prefix is replaced by the server's
address. An input name missing from the table fails the test: a relative one with the
command's own "does not exist" error, an absolute ``/data/...`` one before anything runs.

To document a new example: write it in a fenced block, name its inputs realistically, add
each new input name to :data:`DATA` (and to :data:`REQUIRES` when it needs companion files,
e.g. the tilt-series STAR files of a RELION project), and run
``make test PYTEST_ARGS="-k readme"``.
"""
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

README = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                       "README.md"))
SHELL_LANGUAGES = ("", "bash", "sh", "shell", "console")
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\b\s*(.*?)\s*-->")
SCRIPT_NAME = re.compile(r"^#\s*([\w.-]+\.py)\b")
#: a command word ``cryoprocs`` (line start, after ; & | ( ` or inside $( ... ))
INVOKES_CRYOPROCS = re.compile(r"(?:^|[;&|(`]|\$\()\s*cryoprocs(?=\s|$|\))", re.M)
ABSOLUTE_DATA = re.compile(r"""(?<![\w.])/data/[^\s"'`)]*""")
PLACEHOLDER = "<command>"


# ------------------------------------------------------------------------- data table
def _shared(root, path):
    """``path`` (relative to the reference data) under ``root``. Without the full reference
    pack (a clone), the file comes from the repository subset or the demo's downloads, and a
    file neither has skips the example, naming the file and why
    (:func:`cryoprocs.tests.shared_data`); a file missing from the full pack is an error."""
    full = os.path.join(root, path)
    if os.path.exists(full):
        return full
    from cryoprocs.tests import _full_pack_root, shared_data
    if _full_pack_root() is None:
        return shared_data(*path.split("/"))
    raise FileNotFoundError("README example data %s is missing from the shared data" % full)


def link(path):
    """A file or folder of the shared data folder (path relative to it)."""
    def make(dest, root):
        os.symlink(_shared(root, path), dest)
    make.describe = path
    return make


def folder(*paths):
    """A folder holding links to these shared files (e.g. a folder of tomograms); a path
    may be a ``{name in the folder: shared path}`` dict."""
    links = {}
    for p in paths:
        links.update(p if isinstance(p, dict) else {os.path.basename(p): p})

    def make(dest, root):
        os.makedirs(dest)
        for name, path in links.items():
            os.symlink(_shared(root, path), os.path.join(dest, name))
    make.describe = "folder of " + ", ".join("%s = %s" % kv for kv in links.items())
    return make


def derived(function, describe):
    """A file written by ``function(dest, root)`` from the shared data."""
    function.describe = describe
    return function


def _sphere_mask_like(path, radius):
    def make(dest, root):
        from cryoprocs.convert.mrc import mrc_info, write_mrc
        from cryoprocs.kernels.masks import make_mask
        info = mrc_info(_shared(root, path))
        mask = make_mask(tuple(info.shape), "sphere", radius=radius).astype(np.float32)
        write_mrc(dest, mask, voxel_size=float(info.voxel_size[0]))
    return derived(make, "sphere of radius %d px on the grid of %s" % (radius, path))


def _tlt_from_relion_star(path):
    def make(dest, root):
        from cryoprocs.convert import star
        table = next(iter(star.read_star(_shared(root, path)).values()))
        np.savetxt(dest, table["rlnTomoNominalStageTiltAngle"].to_numpy(float), fmt="%.2f")
    return derived(make, "tilt angles (rlnTomoNominalStageTiltAngle) of " + path)


def _ngff_like(path, levels, tilt_series, chunks):
    def make(dest, root):
        from cryoprocs.convert.mrc import read_mrc
        from cryoprocs.tests.zarr_helpers import write_ngff
        from cryoprocs.convert.mrc import mrc_info
        write_ngff(dest, read_mrc(_shared(root, path), dtype=np.float32),
                   float(mrc_info(_shared(root, path)).voxel_size[0]), chunks, levels=levels,
                   tilt_series=tilt_series)
    return derived(make, "OME-Zarr (%d level%s, ome-zarr's writer) of %s"
                   % (levels, "s" if levels > 1 else "", path))


def _hiv_positions(root):
    """The HIV tomogram's 5377 real particle positions, 0-based (x, y, z) voxels."""
    from cryoprocs.demo.data import load_hiv_particles
    return load_hiv_particles(_shared(root, "real/hiv_vlp/tomo_point.npy"))[0]


def _hiv_picks_csv(dest, root):
    from cryoprocs.convert.particles import write_particles_csv
    pos = _hiv_positions(root)
    write_particles_csv(dest, pos, {"id": np.arange(1, len(pos) + 1)})


_hiv_picks_csv.describe = "CSV (x,y,z voxels) of the HIV tomogram's real particle positions"


def _hiv_imod_model(dest, root):
    import imodmodel
    import pandas as pd
    pos = _hiv_positions(root) + [0.5, 0.5, 0.0]            # IMOD model coordinates
    imodmodel.write(pd.DataFrame(pos, columns=list("xyz")), dest)


_hiv_imod_model.describe = "IMOD model (imodmodel) of the HIV tomogram's real particle positions"


def _copick_project(dest, root):
    """copick.json: a copick project made with copick's API (runs TS_01/TS_02, 10 Å wbp
    tomograms, ribosome picks; cryoprocs.tests.copick_helpers)."""
    from cryoprocs.tests.copick_helpers import make_project
    cfg, _ = make_project(os.path.dirname(dest))
    assert os.path.samefile(cfg, dest)


_copick_project.describe = "copick project (copick_helpers.make_project)"

RELION_PROJECT = "relion5_extract"
#: README input name -> how to make it from the shared data (see the module docstring)
DATA = {
    # cryoprocs mask: real particles (5 x 256^2, 2.8 A) and the 80S ribosome map (64^3, 8.66 A)
    "particles.mrcs": link("real/cryodrgn_relion31/relion31.mrcs"),
    "map.mrc": link("real/maps/ribo80s_emd_3883_866_64_resized.mrc"),
    "map_mask.mrc": _sphere_mask_like("real/maps/ribo80s_emd_3883_866_64_resized.mrc", 26),
    # cryoprocs noise-fill and movie: the demo's HIV VLP tomogram and a mask of its particles
    "tomo.mrc": link("real/hiv_vlp/hiv_ts01_tomo_40A.mrc"),
    "tomo_mask.mrc": link("real/hiv_vlp/hiv_particle_shell_mask_r3.mrc"),
    # cryoprocs pick: template-matching maps (GAPSTOP-style synthetic, and real STOPGAP ones)
    "scores_0_1.mrc": link("cryocat_peaks/syn_small/scores.mrc"),
    "angles_0_1.mrc": link("cryocat_peaks/syn_small/angles.mrc"),
    "angles_20_C1.txt": link("cryocat_peaks/syn_small/angles.csv"),
    "id_2_scores.em": link("cryocat_peaks/real/id_2_scores.em"),
    "id_2_angles.em": link("cryocat_peaks/real/id_2_angles.em"),
    "anglist.csv": link("cryocat_peaks/real/AGL_anglist_20_deg_c1.csv"),
    # cryoprocs extract / reconstruct: run inside a RELION 5 project
    "particles.star": link(RELION_PROJECT + "/particles.star"),
    "tomograms.star": link(RELION_PROJECT + "/tomograms.star"),
    "tiltseries": link(RELION_PROJECT + "/tiltseries"),
    # cryoprocs movie: a folder of tomograms, and a tilt series with its angles
    "tomograms/": folder("real/cylindra/13pf_MT.mrc", "real/cylindra/14pf_MT.mrc"),
    "TS_01.st": link(RELION_PROJECT + "/tiltseries/TS_01.mrcs"),
    "TS_01.tlt": _tlt_from_relion_star(RELION_PROJECT + "/tiltseries/TS_01.star"),
    # cryoprocs movie --particles: the HIV tomogram (EMPIAR-10164 TS_01) with its real
    # particle positions as a CSV and as an IMOD model
    "TS_01.mrc": link("real/hiv_vlp/hiv_ts01_tomo_40A.mrc"),
    "TS_01_picks.csv": _hiv_picks_csv,
    "TS_01.mod": _hiv_imod_model,
    # cryoprocs convert / copick: OME-Zarr stores, a copick project (the RELION 5 project's
    # particles stand for an extraction job's particles.star)
    "TS_01.zarr": _ngff_like(RELION_PROJECT + "/tiltseries/TS_01.mrcs", 1, True, (1, 64, 64)),
    "tomo.zarr": _ngff_like("real/hiv_vlp/hiv_ts01_tomo_40A.mrc", 3, False, (32, 64, 64)),
    "copick.json": _copick_project,
    "Extract/job020/particles.star": link(RELION_PROJECT + "/particles.star"),
    # batch scripts (absolute paths are replaced in the text)
    "/data/emd_3883.mrc": link("real/maps/ribo80s_emd_3883_866_64_resized.mrc"),
    # relion5_refinement.py: a RELION 5 project (its folder: tomograms.star, particles.star
    # and the tilt-series STAR files and stacks they name)
    "/data/relion": link(RELION_PROJECT),
}
#: URL prefixes of the README -> served from a local HTTP server (127.0.0.1) in the test;
#: the rest of each URL is a DATA name, made in the served folder
URLS = ("https://host/dataset/",)
#: input name -> companion names it needs next to it (not named in the command)
REQUIRES = {
    "particles.star": ("tiltseries",),
    "tomograms.star": ("tiltseries",),
}

# ------------------------------------------------------------------------- examples/
EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                         "..", "examples"))
HIV_TOMO = "real/hiv_vlp/hiv_ts01_tomo_40A.mrc"
HIV_TSID = "hiv_ts01"


def _template_matching(dest, root):
    """Score map of the HIV tomogram (normalised cross-correlation with a VLP-radius shell,
    as the demo's peak-picking step computes it), its one-orientation angle map and list."""
    from cryoprocs.convert.mrc import read_mrc, write_mrc
    from cryoprocs.demo.steps.peaks import shell_ncc
    os.makedirs(dest)
    tomo = read_mrc(_shared(root, HIV_TOMO), dtype=np.float32)
    write_mrc(os.path.join(dest, "scores_%s.mrc" % HIV_TSID), shell_ncc(tomo), voxel_size=40.0)
    write_mrc(os.path.join(dest, "angles_%s.mrc" % HIV_TSID), np.zeros(tomo.shape, np.float32),
              voxel_size=40.0)
    with open(os.path.join(dest, "angles.txt"), "w") as fh:
        fh.write("0.0,0.0,0.0\n")


def _relion_project(dest, root):
    """A RELION 5 project of a tilt series simulated from the HIV tomogram (-60..60 deg in
    3 deg steps, CTF, dose-symmetric pre-exposure, noise: the demo's simulation)."""
    from cryoprocs.pipelines.simulate import SimulationSettings, simulate_relion_project
    simulate_relion_project(_shared(root, HIV_TOMO), dest, HIV_TSID, SimulationSettings(),
                            dest, pixel_size=40.0)


#: /data paths of examples/tomography_chain.py -> the demo's data: the HIV VLP tomogram and
#: a mask of its real particles as they are; template-matching maps and tilt series derived
#: from the tomogram as the demo derives them (the demo data have neither)
EXAMPLE_DATA = {
    "/data/tomo/tomograms": folder({HIV_TSID + ".mrc": HIV_TOMO}),
    "/data/tomo/segmentations": folder({HIV_TSID + ".mrc":
                                        "real/hiv_vlp/hiv_particle_shell_mask_r3.mrc"}),
    "/data/tomo/template_matching": derived(_template_matching, "shell-NCC score map"),
    "/data/tomo/relion": derived(_relion_project, "simulated RELION 5 tilt series"),
}


# ------------------------------------------------------------------------- README parsing
@dataclass
class Block:
    """One fenced code block of a Markdown file."""
    path: str
    line: int                   # 1-based line of the opening fence
    language: str
    text: str
    section: str = ""
    skip: str = ""              # reason given by a readme-test skip mark

    @property
    def where(self):
        return "%s:%d (%s)" % (os.path.basename(self.path), self.line, self.section)

    @property
    def script_name(self):
        m = SCRIPT_NAME.match(self.text)
        return m.group(1) if self.language == "python" and m else None

    @property
    def runs_cryoprocs(self):
        return self.language in SHELL_LANGUAGES and bool(INVOKES_CRYOPROCS.search(
            "\n".join(_strip_comment(ln) for ln in self.text.splitlines())))

    @property
    def test_id(self):
        first = next((ln.strip() for ln in self.text.splitlines()
                      if ln.strip() and not ln.strip().startswith("#")), "")
        return "L%d-%s" % (self.line, re.sub(r"[^\w.-]+", "_", first)[:40])


def _strip_comment(line):
    """A shell line without its trailing comment (a '#' starting a word)."""
    return re.sub(r"(^|\s)#.*$", "", line)


def script_block(path):
    """A whole Python file (e.g. under examples/) as a :class:`Block`."""
    return Block(path, 1, "python", open(path, encoding="utf-8").read(),
                 os.path.basename(path))


def readme_blocks(path=README):
    """Every fenced block of ``path`` (fences of ``` or ~~~), with its nearest heading.

    Raises
    ------
    ValueError
        an indented code block invokes ``cryoprocs`` (it would not be tested), or a fence
        is not closed.
    """
    lines = open(path, encoding="utf-8").read().splitlines()
    blocks, section, k = [], "top", 0
    while k < len(lines):
        line = lines[k]
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", line)
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif fence:
            indent, marker, language = fence.groups()
            end = k + 1
            while end < len(lines) and not lines[end].strip().startswith(marker):
                end += 1
            if end == len(lines):
                raise ValueError("%s:%d: unclosed code fence" % (path, k + 1))
            body = [ln[len(indent):] if ln.startswith(indent) else ln
                    for ln in lines[k + 1:end]]
            mark = SKIP_MARK.search(lines[k - 1]) if k else None
            blocks.append(Block(path, k + 1, language.lower(), "\n".join(body) + "\n",
                                section, mark.group(1) or "no reason given" if mark else ""))
            k = end
        elif line.startswith("    ") and INVOKES_CRYOPROCS.search(line.strip()) \
                and (k == 0 or not lines[k - 1].strip()):
            raise ValueError("%s:%d: an indented code block runs cryoprocs; write it as a "
                             "fenced ```bash block so that the tests run it" % (path, k + 1))
        k += 1
    return blocks


@dataclass
class Plan:
    """What the README harness runs: shell blocks, and python blocks no shell block runs."""
    shell: list = field(default_factory=list)
    python: list = field(default_factory=list)
    scripts: dict = field(default_factory=dict)     # NAME.py -> python Block
    skipped: list = field(default_factory=list)     # (Block, reason)


def plan(blocks):
    out = Plan()
    for b in blocks:
        if b.script_name:
            out.scripts[b.script_name] = b
    for b in blocks:
        if b.skip:
            out.skipped.append((b, "readme-test skip: " + b.skip))
        elif b.language == "python":
            run_by = [s for s in blocks if s.runs_cryoprocs and not s.skip and b.script_name
                      and b.script_name in _tokens(s.text)]
            if not run_by:
                out.python.append(b)
        elif b.runs_cryoprocs:
            out.shell.append(b)
        else:
            out.skipped.append((b, "does not run cryoprocs" if b.language in SHELL_LANGUAGES
                                else "%s block" % (b.language or "text")))
    return out


def _tokens(text):
    """Shell words of ``text`` (comments dropped), plus the values of ``--opt=value``."""
    words = []
    for line in text.replace("\\\n", " ").splitlines():
        try:
            parts = shlex.split(line, comments=True)
        except ValueError:
            parts = line.split()
        for p in parts:
            words.append(p)
            if p.startswith("-") and "=" in p:
                words.append(p.split("=", 1)[1])
    return set(words)


# ------------------------------------------------------------------------- running
def user_environment(scratch):
    """A fresh user's shell after ``make venv``: the venv's bin first on PATH, no SCIPION_*
    variable, CRYOPROCS_HOME in the scratch folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCIPION_") and k not in ("CRYOPROCS_HOME", "PYTHONPATH")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["CRYOPROCS_HOME"] = os.path.join(scratch, "cryoprocs-home")
    return env


def materialise(names, scratch, data_root, table=None, requires=None):
    """Create the inputs ``names`` (keys of ``table``) in ``scratch``; returns
    {absolute README path: its scratch path} for the text substitution."""
    table = DATA if table is None else table
    requires = REQUIRES if requires is None else requires
    todo = list(names)
    for name in names:
        todo += [r for r in requires.get(name, ()) if r not in todo]
    replace = {}
    for name in todo:
        dest = os.path.join(scratch, name.lstrip("/").rstrip("/"))
        if name.startswith("/"):
            replace[name] = dest
        if os.path.lexists(dest):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        table[name](dest, data_root)
    return replace


def substitute_data_paths(text, replace, where):
    """Replace the absolute data paths of ``text``; an unknown ``/data/...`` path is an error."""
    for old in sorted(replace, key=len, reverse=True):
        text = text.replace(old, replace[old])
    unknown = sorted(set(ABSOLUTE_DATA.findall(text)))
    if unknown:
        raise KeyError("%s uses data paths without an entry in DATA "
                       "(cryoprocs/tests/readme_examples.py): %s" % (where, ", ".join(unknown)))
    return text


def _expand_placeholder(text):
    """``<command>`` lines: a one-line loop over every sub-command (README line numbers kept)."""
    from cryoprocs.cli import COMMANDS
    out = []
    for line in text.splitlines():
        if PLACEHOLDER in line:
            line = 'for command in %s; do %s; done' % (
                " ".join(COMMANDS), line.replace(PLACEHOLDER, '"$command"'))
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Result:
    block: Block
    returncode: int
    stdout: str
    stderr: str
    scratch: str
    seconds: float = 0.0

    def failure(self):
        """A message naming the block, the failing line and the end of its output."""
        traced = re.findall(r"^\+ (\S+:\d+): (.*)$", self.stderr, re.M)
        at = ("\n  last command, %s: %s" % traced[-1]) if traced else ""
        tail = "\n".join(self.stderr.strip().splitlines()[-25:])
        return ("README example %s failed with exit status %d%s\n--- its stderr (end) ---\n%s"
                "\n--- (inputs come from DATA in cryoprocs/tests/readme_examples.py; every "
                "input name a README example uses must be listed there)"
                % (self.block.where, self.returncode, at, tail))


def run_shell_block(block, scripts, scratch, data_root, timeout=900):
    """Run a shell block as a user would (see the module docstring); returns a :class:`Result`."""
    os.makedirs(scratch, exist_ok=True)
    tokens = _tokens(block.text)
    names = [n for n in DATA if n in tokens or (n.endswith("/") and n.rstrip("/") in tokens)
             or (n.startswith("/") and n in block.text)]
    for script_name, script in scripts.items():
        if script_name in tokens:
            names += [n for n in DATA if n.startswith("/") and n in script.text]
    replace = materialise(names, scratch, data_root)
    for script_name, script in scripts.items():
        if script_name in tokens:
            with open(os.path.join(scratch, script_name), "w") as fh:
                fh.write(substitute_data_paths(script.text, replace, script.where))
    text = _expand_placeholder(substitute_data_paths(block.text, replace, block.where))
    served = os.path.join(scratch, "served")
    urls = sorted({m.group(0) for prefix in URLS
                   for m in re.finditer(re.escape(prefix) + r"[^\s\"'`)]*", text)})
    if not urls:
        return _run_bash(block, text, scratch, timeout)
    os.makedirs(served, exist_ok=True)
    for url in urls:
        prefix = next(p for p in URLS if url.startswith(p))
        name = url[len(prefix):]
        if name not in DATA:
            raise KeyError("%s: %s is served from DATA[%r], which does not exist"
                           % (block.where, url, name))
        materialise([name], served, data_root)
    from cryoprocs.tests.zarr_helpers import serve
    with serve(served) as (base, _):
        for prefix in URLS:
            text = text.replace(prefix, base + "/")
        return _run_bash(block, text, scratch, timeout)


def _run_bash(block, text, scratch, timeout):
    path = os.path.join(scratch, ".readme_block.sh")
    with open(path, "w") as fh:
        # line 1: trace each command with its README line (bash ignores PS4 from the
        # environment when run as root); the block's line k is README line fence + k
        fh.write("PS4='+ %s:$((LINENO + %d)): '; set -x\n" % (os.path.basename(block.path),
                                                             block.line - 1))
        fh.write(text)
    t0 = time.time()
    res = subprocess.run(["bash", "-e", "-o", "pipefail", path], cwd=scratch,
                         env=user_environment(scratch), capture_output=True, text=True,
                         timeout=timeout)
    return Result(block, res.returncode, res.stdout, res.stderr, scratch, time.time() - t0)


def run_python_script(block, scratch, data_root, table=None, args=(), name=None,
                      timeout=900):
    """Run a batch script with ``cryoprocs python`` in ``scratch`` after substituting its data
    paths (keys of ``table`` starting with /); returns a :class:`Result`."""
    table = DATA if table is None else table
    os.makedirs(scratch, exist_ok=True)
    names = [n for n in table if n.startswith("/") and n in block.text]
    replace = materialise(names, scratch, data_root, table, {})
    name = name or block.script_name or "readme_block_%d.py" % block.line
    with open(os.path.join(scratch, name), "w") as fh:
        fh.write(substitute_data_paths(block.text, replace, block.where))
    env = user_environment(scratch)
    cmd = [os.path.join(os.path.dirname(sys.executable), "cryoprocs"), "python", name] + list(args)
    t0 = time.time()
    res = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True,
                         timeout=timeout)
    return Result(block, res.returncode, res.stdout, res.stderr, scratch, time.time() - t0)


# ------------------------------------------------------------------------- scheduling
@dataclass
class Job:
    """One documentation run: a README shell block, or a batch script run by
    ``cryoprocs python`` (a README python block or a file of examples/)."""
    key: str
    kind: str                       # "shell" or "python"
    block: Block
    table: dict = None              # data table of a python job (default DATA)
    args: tuple = ()
    name: str = None                # file name of a python job

    def run(self, scratch, data_root, scripts):
        if self.kind == "shell":
            return run_shell_block(self.block, scripts, scratch, data_root)
        return run_python_script(self.block, scratch, data_root, self.table, self.args,
                                 self.name)


def readme_jobs(the_plan):
    return ([Job("README-" + b.test_id, "shell", b) for b in the_plan.shell]
            + [Job("README-" + b.test_id, "python", b) for b in the_plan.python])


def example_jobs():
    path = os.path.join(EXAMPLES, "tomography_chain.py")
    return [Job("examples/tomography_chain.py", "python", script_block(path), EXAMPLE_DATA,
                ("hiv",), "tomography_chain.py")]


class DocRuns:
    """Runs jobs in a few worker threads (each job is mostly subprocess start-up and
    pyworkflow's polling, so they overlap well); :meth:`result` waits for one."""

    def __init__(self, jobs, base, data_root, scripts, workers=3):
        from concurrent.futures import ThreadPoolExecutor
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._futures = {}
        # longest first: the batch scripts (protocol runs) before the single commands
        def runs_script(job):
            return job.kind == "python" or bool(set(scripts) & _tokens(job.block.text))
        for job in sorted(jobs, key=lambda j: not runs_script(j)):
            scratch = os.path.join(base, re.sub(r"[^\w.-]+", "_", job.key))
            self._futures[job.key] = self._pool.submit(job.run, scratch, data_root, scripts)

    def result(self, key):
        return self._futures[key].result()

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)
