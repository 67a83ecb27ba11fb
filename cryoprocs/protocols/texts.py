"""Small helpers for the summaries and methods of the cryoprocs protocols (no image maths)."""


def plural(n, noun, nouns=None):
    """``"1 tomogram"``, ``"2 tomograms"``: ``n`` and the noun in agreement (``nouns``
    gives an irregular plural, e.g. ``plural(2, "box", "boxes")``)."""
    n = int(n)
    return "%d %s" % (n, noun if n == 1 else (nouns or noun + "s"))


def link(path, label=None):
    """A file link of a summary, ``[[path][label]]`` (label: the file name): pyworkflow
    renders only this form as a link that opens the file; a bare ``[[path]]`` shows as
    text."""
    import os
    return "[[%s][%s]]" % (path, label or os.path.basename(str(path).rstrip("/")))


def plain(text):
    """A summary line for a console: links shown as their labels (``[[path][label]]`` ->
    ``label``, ``[[path]]`` -> ``path``) and pyworkflow's ``*bold*`` marks removed."""
    import re
    text = re.sub(r"\[\[([^\]]*)\]\[([^\]]*)\]\]", r"\2", text)
    return re.sub(r"\[\[([^\]]*)\]\]", r"\1", text).replace("*", "")
