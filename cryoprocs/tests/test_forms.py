"""Every protocol instantiates, and every form parameter has a label, a help text and only
keywords that pyworkflow understands (it silently ignores unknown ones such as validator=)."""
import ast
import inspect
import os

import pytest

import cryoprocs
import cryoprocs.protocols as protocols
from pyworkflow.protocol import Protocol
from pyworkflow.protocol.params import Line, Group

# keyword arguments accepted by pyworkflow 3.11 Param / ElementGroup constructors
ALLOWED = {"label", "help", "default", "important", "condition", "expertLevel", "validators",
           "allowsNull", "display", "choices", "pointerClass", "pointerCondition", "allowsPointers",
           "readOnly", "allowsEmpty", "wizard", "value", "paramClass", "cwd"}
ADDPARAM_FUNCS = {"addParam", "addLine", "addGroup", "addSection", "addParallelSection"}


def _protocol_classes():
    out = []
    for name, obj in inspect.getmembers(protocols, inspect.isclass):
        if issubclass(obj, Protocol) and obj.__module__.startswith("cryoprocs.protocols"):
            out.append(obj)
    return out


def test_protocols_found():
    names = {c.__name__ for c in _protocol_classes()}
    assert {"ProtCryoprocsApplyMask2D", "ProtCryoprocsApplyMask3D"} <= names
    for c in _protocol_classes():
        assert c.__name__.startswith("ProtCryoprocs"), c.__name__


def _iter_params(form):
    for section in form.iterSections():
        for name, param in section.iterParams():
            yield name, param
            if isinstance(param, (Line, Group)):
                for sub, p in param.iterParams():
                    yield sub, p


@pytest.mark.parametrize("cls", [c for c in _protocol_classes() if not c.isBase()],
                         ids=lambda c: c.__name__)
def test_form_labels_and_help(cls):
    prot = cls()
    form = prot.getDefinition()
    count = 0
    for name, param in _iter_params(form):
        if name in ("hostName", "numberOfThreads", "numberOfMpi", "runName", "runMode",
                    "comment", "useQueue", "queueParams"):
            continue
        count += 1
        label = param.getLabel() if hasattr(param, "getLabel") else param.label.get()
        assert label, "%s.%s has no label" % (cls.__name__, name)
        helptext = param.help.get() if hasattr(param, "help") else None
        assert helptext and len(helptext) > 10, "%s.%s has no help" % (cls.__name__, name)
    assert count > 0
    assert cls.__doc__ and cls._label


def test_addparam_keywords_are_known():
    """Static check of every addParam/addLine/... call in cryoprocs/protocols."""
    root = os.path.join(os.path.dirname(cryoprocs.__file__), "protocols")
    bad = []
    for fn in os.listdir(root):
        if not fn.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(root, fn)).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ADDPARAM_FUNCS:
                for kw in node.keywords:
                    if kw.arg is not None and kw.arg not in ALLOWED and \
                            not (node.func.attr == "addParallelSection"
                                 and kw.arg in ("threads", "mpi", "binThreads",
                                                "binThreadsHelp")):
                        bad.append("%s:%d %s(%s=)" % (fn, node.lineno, node.func.attr, kw.arg))
    assert not bad, "unknown keywords: %s" % bad


def _imports(package):
    """``(file, absolute module name)`` of every import in the modules of ``cryoprocs.<package>``
    (sub-packages and function-level imports included; relative imports resolved)."""
    base = os.path.dirname(cryoprocs.__file__)
    for dirpath, _, files in os.walk(os.path.join(base, package)):
        rel = os.path.relpath(dirpath, os.path.dirname(base))
        for fn in sorted(files):
            if not fn.endswith(".py"):
                continue
            here = rel.split(os.sep)          # the module's package, e.g. cryoprocs.kernels
            tree = ast.parse(open(os.path.join(dirpath, fn)).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        yield os.path.join(rel, fn), a.name
                elif isinstance(node, ast.ImportFrom):
                    mod = node.module or ""
                    if node.level:
                        parent = here[:len(here) - node.level + 1]
                        mod = ".".join(parent + ([mod] if mod else []))
                    yield os.path.join(rel, fn), mod
                    if not node.module:         # "from . import x": x may be a module
                        for a in node.names:
                            yield os.path.join(rel, fn), mod + "." + a.name


#: what each layer must not import (thin protocols, pure kernels; CONTRIBUTING.md)
BANNED_IMPORTS = {
    "kernels": ("pyworkflow", "pwem", "tomo", "cryoprocs.convert", "cryoprocs.pipelines",
                "cryoprocs.protocols", "cryoprocs.commands", "cryoprocs.demo"),
    "convert": ("cryoprocs.pipelines", "cryoprocs.protocols", "cryoprocs.commands"),
    "pipelines": ("cryoprocs.protocols", "cryoprocs.commands"),
}


@pytest.mark.parametrize("layer", sorted(BANNED_IMPORTS))
def test_layers_import_only_lower_layers(layer):
    bad = ["%s imports %s" % (fn, mod) for fn, mod in _imports(layer)
           if any(mod == b or mod.startswith(b + ".") for b in BANNED_IMPORTS[layer])]
    assert not bad, bad


def test_import_guard_sees_relative_and_nested_imports():
    found = set(_imports("kernels"))
    assert ("cryoprocs/kernels/relion_geometry.py", "cryoprocs.kernels.euler") in found
    assert any(mod == "scipy.spatial" for _, mod in found)     # a function-level import


def _unannotated(tree, where):
    """``"file:line name: what lacks a hint"`` for the public functions of a module's ``tree``:
    module-level functions and the methods of public classes (``__init__`` included: its
    parameters, not its return) whose name has no leading underscore."""
    out = []

    def check(fn, qual):
        a = fn.args
        params = a.posonlyargs + a.args + a.kwonlyargs
        if qual and params and params[0].arg in ("self", "cls"):
            params = params[1:]
        missing = [p.arg for p in params if p.annotation is None]
        missing += ["*" + v.arg for v in (a.vararg, a.kwarg) if v is not None
                    and v.annotation is None]
        if fn.returns is None and fn.name != "__init__":
            missing.append("return")
        if missing:
            out.append("%s:%d %s%s: %s" % (where, fn.lineno, qual, fn.name, ", ".join(missing)))

    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and not node.name.startswith("_"):
            check(node, "")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for m in node.body:
                if isinstance(m, functions) and (not m.name.startswith("_") or
                                                 m.name == "__init__"):
                    check(m, node.name + ".")
    return out


@pytest.mark.parametrize("layer", ["kernels", "convert"])
def test_public_kernel_and_convert_functions_have_type_hints(layer):
    """Public kernel and convert functions have type hints (parameters and return)."""
    base = os.path.dirname(cryoprocs.__file__)
    bad = []
    for dirpath, _, files in os.walk(os.path.join(base, layer)):
        for fn in sorted(files):
            if fn.endswith(".py"):
                path = os.path.join(dirpath, fn)
                bad += _unannotated(ast.parse(open(path).read()),
                                    os.path.relpath(path, os.path.dirname(base)))
    assert not bad, "missing type hints:\n" + "\n".join(bad)


def test_type_hint_guard_sees_missing_hints():
    tree = ast.parse("def f(a: int, *args, b=1) -> int: ...\n"
                     "def g(x: int): ...\n"
                     "def _private(x): ...\n"
                     "class C:\n"
                     "    def __init__(self, n): ...\n"
                     "    @property\n"
                     "    def size(self): ...\n"
                     "    def ok(self, v: float) -> None: ...\n"
                     "class _Hidden:\n"
                     "    def run(self, x): ...\n")
    assert _unannotated(tree, "m.py") == ["m.py:1 f: b, *args", "m.py:2 g: return",
                                          "m.py:5 C.__init__: n", "m.py:7 C.size: return"]



def test_plugin_entry_point_and_class():
    from importlib.metadata import entry_points
    eps = [e for e in entry_points(group="pyworkflow.plugin") if e.name == "cryoprocs"]
    assert eps and eps[0].value == "cryoprocs"
    import pwem
    assert issubclass(cryoprocs.Plugin, pwem.Plugin)
    assert cryoprocs.__version__
    scripts = [e for e in entry_points(group="console_scripts") if e.name == "cryoprocs"]
    assert scripts and scripts[0].value == "cryoprocs.cli:main"


def test_plugin_registers_with_pyworkflow():
    from pwem import Domain
    plugin = Domain.getPluginModule("cryoprocs")
    assert plugin.Plugin is cryoprocs.Plugin
    protos = Domain.getProtocols()
    assert "ProtCryoprocsApplyMask3D" in protos
    # bibtex keys used by the protocols are defined
    keys = set(plugin._bibtex.keys())
    assert {"cryoprocs2026", "delaRosaTrevin2013"} <= keys
    # every entry of bibtex.py parses (a missing brace silently swallows the next entry)
    import re
    from cryoprocs import bibtex
    declared = set(re.findall(r"^@\w+\{(\w+),", bibtex.__doc__, re.M))
    assert declared == keys
    # every citation a protocol declares exists
    for name, cls in inspect.getmembers(protocols, inspect.isclass):
        if issubclass(cls, Protocol) and not cls.isBase():
            for key in getattr(cls, "_references", []) or []:
                assert key in keys, (name, key)


def test_protocols_conf_lists_existing_protocols():
    import configparser
    import json
    conf = configparser.ConfigParser()
    conf.optionxform = str
    conf.read(os.path.join(os.path.dirname(cryoprocs.__file__), "protocols.conf"))
    names = set()

    def walk(nodes):
        for n in nodes:
            if n["tag"] == "protocol":
                names.add(n["value"])
            walk(n.get("children", []))
    for view in conf["PROTOCOLS"]:
        walk(json.loads(conf["PROTOCOLS"][view]))
    available = {c.__name__ for c in _protocol_classes()}
    assert names and names <= available, names - available
    final = {c.__name__ for c in _protocol_classes() if not c.isBase()
             and not getattr(c, "_hiddenFromMenus", False)}
    assert final <= names, "protocols missing from protocols.conf: %s" % (final - names)


def test_wizards_bound_to_existing_params():
    from pwem import Domain
    from cryoprocs import wizards
    classes = [wizards.CryoprocsParticleMaskRadiusWizard, wizards.CryoprocsParticleMaskRadiiWizard,
               wizards.CryoprocsVolumeMaskRadiusWizard, wizards.CryoprocsVolumeMaskRadiiWizard]
    for wiz in classes:
        for protClass, names in wiz._targets:
            form = protClass().getDefinition()
            for n in names:
                assert form.getParam(n) is not None, (wiz.__name__, n)
    from pyworkflow.wizard import DESKTOP_TKINTER as TKINTER
    found = Domain.findWizards(protocols.ProtCryoprocsApplyMask2D(), TKINTER)
    assert found["radius"] is wizards.CryoprocsParticleMaskRadiusWizard
    assert found["innerRadius"] is wizards.CryoprocsParticleMaskRadiiWizard
    found = Domain.findWizards(protocols.ProtCryoprocsApplyMask3D(), TKINTER)
    assert found["radius"] is wizards.CryoprocsVolumeMaskRadiusWizard


def test_console_command_and_kernels_do_not_load_scipion():
    import subprocess
    import sys
    code = ("import sys, cryoprocs.cli, cryoprocs.kernels.masks, cryoprocs.pipelines.extract; "
            "print(sorted(m for m in ('pwem', 'pyworkflow', 'tomo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_protocol_form_shows_the_plugin_logo():
    path = protocols.ProtCryoprocsApplyMask2D.getPluginLogoPath()
    assert path and os.path.exists(path) and path.endswith("cryoprocs_logo.png")


def test_item_commands_get_their_thread_count_in_their_environment():
    """A step's command (a subprocess, or a queue job exporting this environment) gets its
    share of threads for its BLAS, OpenMP and numba pools; the rest of the environment is
    this process's."""
    from cryoprocs.protocols.protocol_base import THREAD_VARIABLES, ProtCryoprocsBase

    proto = ProtCryoprocsBase.__new__(ProtCryoprocsBase)
    env = proto._commandEnviron(3)
    assert all(env[v] == "3" for v in THREAD_VARIABLES)
    assert env["PATH"] == os.environ["PATH"]
