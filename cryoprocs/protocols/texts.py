"""Small helpers for the summaries and methods of the cryoprocs protocols (no image maths)."""


def plural(n, noun, nouns=None):
    """``"1 tomogram"``, ``"2 tomograms"``: ``n`` and the noun in agreement (``nouns``
    gives an irregular plural, e.g. ``plural(2, "box", "boxes")``)."""
    n = int(n)
    return "%d %s" % (n, noun if n == 1 else (nouns or noun + "s"))
