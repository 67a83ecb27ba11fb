"""Demo steps, run in this order; each module has ``run(ctx)`` (see demo.workflow)."""

STEPS = [
    "masks",
    "noise_fill",
    "peaks",
    "extract",
    "reconstruct",
    "movies",
    "copick",
]
