"""Sub-commands of the ``cryoprocs`` console command (see :mod:`cryoprocs.cli`)."""
