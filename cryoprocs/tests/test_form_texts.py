"""The texts of every protocol form as the Scipion GUI shows them: help rendered through
pyworkflow's hypertext parser (the help popup's formatting), units, switch and choice
labels, bold required inputs, tab lengths, bibtex entries through pyworkflow's citation
code, and the run log's thread line."""
import inspect
import re

import pytest
from pyworkflow.protocol import Protocol
from pyworkflow.protocol.constants import LEVEL_NORMAL
from pyworkflow.protocol.params import (BooleanParam, EnumParam, Group, Line, PointerParam)

import cryoprocs.protocols as protocols

#: rows a tab shows at most for a normal-level user with the default values (a form row is
#: about 30 px and a protocol form's tab area about 300 px at its default size)
MAX_ROWS = 8
#: units the README promises: Å and e/Å², never "A/px", "(A)" or "e/A^2"
BAD_UNITS = re.compile(r"\bA/px\b|\(A\)|e/A\^?2|\d A\b(?![-a-z])|\bin A\b")
CAMEL = re.compile(r"\b[A-Z][a-z]+[A-Z][A-Za-z0-9]*\b")


def _classes():
    return [c for _, c in inspect.getmembers(protocols, inspect.isclass)
            if issubclass(c, Protocol) and c.__module__.startswith("cryoprocs.protocols")
            and not c.isBase()]


def _params(form):
    for section in form.iterSections():
        for name, param in section.iterParams():
            yield section, name, param
            if isinstance(param, (Line, Group)):
                for sub, p in param.iterParams():
                    yield section, sub, p


def render(text):
    """The text the GUI's TaggedText shows for ``text`` (bold, italic, links resolved)."""
    from pyworkflow.utils import parseHyperText
    from pyworkflow.utils.utils import HYPER_LINK2

    def match(m, tag):
        if tag == HYPER_LINK2:
            return m.group("link2_label")
        return " " + m.group(tag)
    return "\n".join(parseHyperText(line, match) for line in (text or "").splitlines())


OWN = {"hostName", "numberOfThreads", "numberOfMpi", "runName", "runMode", "comment",
       "useQueue", "queueParams"}


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_help_labels_units_and_choices(cls):
    form = cls().getDefinition()
    texts = [("class help", render(cls.getHelpText()))]
    for _, name, p in _params(form):
        if name in OWN:
            continue
        label = p.getLabel() if hasattr(p, "getLabel") else p.label.get()
        helptext = render(p.help.get() if hasattr(p, "help") else "")
        texts += [("%s label" % name, label), ("%s help" % name, helptext)]
        if isinstance(p, BooleanParam):
            assert label.endswith("?"), "%s.%s: switch label %r does not end in ?" \
                % (cls.__name__, name, label)
        if isinstance(p, EnumParam):
            for choice in p.choices:
                assert not CAMEL.search(choice), "%s.%s: choice %r names a class" \
                    % (cls.__name__, name, choice)
                texts.append(("%s choice" % name, choice))
    for where, text in texts:
        assert "%%" not in text, "%s %s: %r" % (cls.__name__, where, text)
        assert '""' not in text, "%s %s: %r" % (cls.__name__, where, text)
        assert not BAD_UNITS.search(text), "%s %s: unit %r in %r" \
            % (cls.__name__, where, BAD_UNITS.search(text).group(), text)


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_required_inputs_are_bold(cls):
    """Every input a mode needs is important (bold); optional ones say so in the label."""
    for _, name, p in _params(cls().getDefinition()):
        if isinstance(p, PointerParam):
            label = p.getLabel()
            assert p.isImportant() or "optional" in label, \
                "%s.%s (%s) is neither bold nor optional" % (cls.__name__, name, label)


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_tabs_fit_for_a_normal_level_user(cls):
    prot = cls()
    for section in prot.getDefinition().iterSections():
        rows = 0
        for name, p in section.iterParams():
            if p.expertLevel.get() > LEVEL_NORMAL or not prot.evalParamCondition(name):
                continue
            rows += 1
            if isinstance(p, Group):
                rows += sum(1 for sub, q in p.iterParams()
                            if q.expertLevel.get() <= LEVEL_NORMAL and
                            prot.evalParamCondition(sub))
        assert rows <= MAX_ROWS, "%s tab %s shows %d rows" % (cls.__name__, section.getLabel(),
                                                             rows)


def test_soft_masks_hide_the_fill_value_and_movie_hides_h264_options():
    from cryoprocs import constants
    p = protocols.ProtCryoprocsApplyMask3D()
    p.geo.set(constants.MASK3D_RAISED_COSINE)
    assert not p.evalParamCondition("fillValue")
    p.geo.set(constants.MASK3D_SPHERE)
    assert p.evalParamCondition("fillValue")
    m = protocols.ProtCryoprocsExportMovie()
    assert m.evalParamCondition("crf") and m.evalParamCondition("preset")
    m.outputFormat.set(constants.MOVIE_FORMAT_AVI)
    assert not m.evalParamCondition("crf") and not m.evalParamCondition("preset")


def test_extract_3d_options_are_not_relion_options():
    from cryoprocs import constants
    p = protocols.ProtCryoprocsExtractSubtomos()
    form = p.getDefinition()
    groups = {name: param for _, name, param in _params(form) if isinstance(param, Group)}
    relion = [g for g in groups.values() if "RELION" in g.getLabel()]
    assert relion and all("invertContrast" not in dict(g.iterParams()) for g in relion)
    p.extractionMode.set(constants.EXTRACT_MODE_SUBVOLUMES)
    visible = [n for _, n, _ in _params(form) if p.evalParamCondition(n)]
    for name, g in groups.items():
        if "RELION" in g.getLabel():
            assert name not in visible
    assert "invertContrast" in visible and "ctfPremultiply" not in visible
    assert p.getParam("inputTiltSeries").isImportant()
    assert p.getParam("inputCtfTomoSeries").isImportant()


def test_every_bibtex_entry_renders_in_scipion_citation_code():
    from pwem import Domain
    bib = Domain.getPluginModule("cryoprocs")._bibtex
    prot = protocols.ProtCryoprocsApplyMask2D()
    for key, entry in bib.items():
        text = prot._getCiteText(entry)
        assert "Error with citation" not in text and "{" not in text, (key, text)
        assert ", ," not in text and text.startswith("[[http"), (key, text)  # web link
        keyed = prot._getCiteText(entry, useKeyLabel=True)
        assert keyed == "[[%s][%s]] " % (entry.get("doi") or entry.get("url"), key), keyed


def test_run_log_states_the_threads():
    """pyworkflow logs 'binary Threads: N' from getBinThreads (it failed on a missing
    binThreads param before): an item's kernel threads, the total for one item."""
    p = protocols.ProtCryoprocsMaskedTomogramNoiseFill()
    p.numberOfThreads.set(4)
    assert p.getBinThreads() == 4
    p._nItemSteps = 3
    assert p.getBinThreads() == 1                       # 3 items share 4 threads
    assert protocols.ProtCryoprocsImportRelion5().getBinThreads() == 1     # serial protocol


def test_demo_prints_the_missing_gui_packages(monkeypatch, capsys, tmp_path):
    import argparse
    import subprocess
    from cryoprocs import sysdeps
    from cryoprocs.commands import demo
    import cryoprocs.demo.data as data
    monkeypatch.setattr(sysdeps, "_loadable", lambda lib: "keysyms" not in lib)
    assert sysdeps.missing_gui_packages()["qt"] == ["libxcb-keysyms1"]
    monkeypatch.setattr(sysdeps, "_loadable", lambda lib: False)
    monkeypatch.setattr(data, "locate", lambda d: {})
    monkeypatch.setattr(subprocess, "call", lambda cmd, env=None: 0)
    args = argparse.Namespace(workdir=str(tmp_path), data=None, only=None)
    assert demo.run(args) == 0
    out = capsys.readouterr().out
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0" in out


def test_demo_table_shows_summary_links_as_the_gui_labels():
    """The demo's console table prints a file-only protocol's summary line as the GUI shows
    it: the label of each link, no ``[[...]]`` markup, no bold marks."""
    from cryoprocs.protocols.texts import link, plain
    line = "673 picks of *hiv-capsid* written into %s (%s)" % (
        link("/p/Runs/000123_X/extra/copick.json"), link("/p/a b/c.png", "preview"))
    assert plain(line) == "673 picks of hiv-capsid written into copick.json (preview)"
    assert plain(line) == render(line).replace("  ", " ").strip()
