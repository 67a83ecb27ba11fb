"""``cryoprocs demo``: a Scipion project running every cryoprocs protocol on real data.

:mod:`cryoprocs.demo.data` finds or downloads the data, :mod:`cryoprocs.demo.workflow` runs
the project (in a child process with the Scipion environment), and each protocol family adds
a module to :mod:`cryoprocs.demo.steps`.
"""
