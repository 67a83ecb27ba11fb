"""``cryoprocs python`` and ``cryoprocs env``: a batch script sees the Scipion environment of
a pip-only installation, its own sys.argv, and every variable a Scipion installation set."""
import os
import subprocess
import sys

import pytest

from cryoprocs import scipion_env

CRYOPROCS = os.path.join(os.path.dirname(sys.executable), "cryoprocs")

SHOW = """\
import json, os, sys
import pyworkflow
print(json.dumps({"argv": sys.argv, "executable": sys.executable,
                  "env": {k: v for k, v in os.environ.items() if k.startswith("SCIPION_")},
                  "domain": str(pyworkflow.Config.getDomain()),
                  "hosts": pyworkflow.Config.SCIPION_HOSTS,
                  "user_data": pyworkflow.Config.SCIPION_USER_DATA}))
"""


def _clean_env(**extra):
    """The environment of a user's shell: no SCIPION_* (the test session sets them)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCIPION_") and k not in ("CRYOPROCS_HOME", "XDG_DATA_HOME")}
    env.update(extra)
    return env


def _run(args, env, cwd=None):
    return subprocess.run([CRYOPROCS] + list(args), env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture()
def show_script(tmp_path):
    path = tmp_path / "show env.py"
    path.write_text(SHOW)
    return str(path)


def test_script_gets_its_argv_and_a_working_scipion_environment(tmp_path, show_script):
    import json
    home = tmp_path / "home"
    res = _run(["python", show_script, "--", "a b", "-v", "--workdir", "x", "-h"],
               _clean_env(CRYOPROCS_HOME=str(home)), cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    # exactly what `python SCRIPT ARGS` would give, options after SCRIPT included
    assert out["argv"] == [show_script, "--", "a b", "-v", "--workdir", "x", "-h"]
    assert os.path.realpath(out["executable"]) == os.path.realpath(sys.executable)
    assert out["domain"] == "<class 'pwem.Domain'>"
    assert out["hosts"] == str(home / "hosts.conf") and os.path.isfile(out["hosts"])
    assert "[localhost]" in open(out["hosts"]).read()
    assert out["user_data"] == str(home / "ScipionUserData")
    assert set(scipion_env.KEYS) <= set(out["env"])


def test_workdir_option_and_exit_status(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import os, sys\nprint(os.environ['SCIPION_HOME'])\nsys.exit(3)\n")
    res = _run(["python", "--workdir", str(tmp_path / "w"), str(script)],
               _clean_env(CRYOPROCS_HOME=str(tmp_path / "not used")))
    assert res.returncode == 3
    assert res.stdout.strip() == str(tmp_path / "w")


def test_variables_of_a_scipion_installation_are_kept(tmp_path, show_script):
    """scipion3 python sets the SCIPION_* variables: cryoprocs python keeps them all; with
    only SCIPION_HOME set, the installation's config/hosts.conf (its queues) is used."""
    import json
    scipion = tmp_path / "scipion"
    (scipion / "config").mkdir(parents=True)
    (scipion / "config" / "hosts.conf").write_text(scipion_env.HOSTS_CONF)
    preset = {"SCIPION_HOME": str(scipion), "SCIPION_USER_DATA": str(tmp_path / "myprojects"),
              "SCIPION_NOTIFY": "True", "SCIPION_DOMAIN": "pwem"}
    res = _run(["python", show_script], _clean_env(CRYOPROCS_HOME=str(tmp_path / "h"),
                                                   **preset))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    for key, value in preset.items():
        assert out["env"][key] == value
    assert out["hosts"] == str(scipion / "config" / "hosts.conf")
    assert out["user_data"] == str(tmp_path / "myprojects")
    # in-process: the same rules, and an explicit SCIPION_HOSTS always wins
    env = scipion_env.scipion_environment(str(tmp_path / "b"),
                                          dict(preset, SCIPION_HOSTS="/x.conf"))
    assert env["SCIPION_HOSTS"] == "/x.conf" and env["SCIPION_HOME"] == str(scipion)


def test_default_workdir_is_under_the_user_data_folder(tmp_path):
    env = _clean_env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    res = _run(["env"], env)
    assert res.returncode == 0, res.stderr
    assert "export SCIPION_HOME=%s" % (tmp_path / "xdg" / "cryoprocs") in res.stdout
    assert scipion_env.default_home({"HOME": "/home/u"}) == "/home/u/.local/share/cryoprocs"
    assert scipion_env.default_home({"CRYOPROCS_HOME": "/c", "XDG_DATA_HOME": "/x"}) == "/c"
    for cmd in ("python", "env"):
        help_text = " ".join(_run([cmd, "--help"], env).stdout.split())
        assert "$CRYOPROCS_HOME, else $XDG_DATA_HOME/cryoprocs, else ~/.local/share/cryoprocs" \
            in help_text
        assert str(tmp_path / "xdg" / "cryoprocs") in help_text.replace(" ", "")


def test_env_lines_evaluate_to_the_same_settings(tmp_path, show_script):
    """``eval "$(cryoprocs env)"`` in sh gives a plain ``python`` the settings of
    ``cryoprocs python``, also for folder names with spaces, quotes and $."""
    import json
    home = tmp_path / "it's a $HOME dir"
    env = _clean_env(CRYOPROCS_HOME=str(home))
    res = _run(["env"], env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [ln.split("=", 1)[0] for ln in lines] == ["export " + k for k in scipion_env.KEYS]
    sh = subprocess.run(["sh", "-c", 'eval "$("$0" env)" && exec "$1" "$2"', CRYOPROCS,
                         sys.executable, show_script], env=env, capture_output=True,
                        text=True, timeout=300)
    assert sh.returncode == 0, sh.stderr
    via_eval = json.loads(sh.stdout.splitlines()[-1])
    direct = json.loads(_run(["python", show_script], env).stdout.splitlines()[-1])
    assert via_eval["env"] == direct["env"]
    assert via_eval["env"]["SCIPION_HOSTS"] == str(home / "hosts.conf")


def test_errors_are_one_line(tmp_path):
    env = _clean_env(CRYOPROCS_HOME=str(tmp_path / "h"))
    res = _run(["python", str(tmp_path / "missing.py")], env)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "missing.py does not exist" in res.stderr
    script = tmp_path / "s.py"
    script.write_text("print('ran')\n")
    res = _run(["python", str(script)], dict(env, SCIPION_HOSTS=str(tmp_path / "nohosts.conf")))
    assert res.returncode == 2 and "ran" not in res.stdout
    assert "SCIPION_HOSTS=%s does not exist" % (tmp_path / "nohosts.conf") in res.stderr
    (tmp_path / "file").write_text("")
    res = _run(["env", "--workdir", str(tmp_path / "file")], env)
    assert res.returncode == 2 and "is not a folder" in res.stderr


def test_interpreter_options_after_double_dash(tmp_path):
    res = _run(["python", "--", "-c", "import sys, os; print(sys.argv[1:], "
                "os.environ['SCIPION_DOMAIN'])", "x", "--y"],
               _clean_env(CRYOPROCS_HOME=str(tmp_path)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['x', '--y'] pwem"
