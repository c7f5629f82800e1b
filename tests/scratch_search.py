"""Overrides that make the shipped search configs search from scratch: they search on the demo's
pretrained, frozen backbone, which the tests do not have. (A plain module, not a fixture, so that
module-level option lists can use it; pytest puts this folder on sys.path for tests/conftest.py.)"""

SCRATCH_SEARCH = [
    "MODEL.WEIGHT", "",
    "MODEL.BACKBONE.NORM", "BN",
    "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", "0",
    "MODEL.BACKBONE.FREEZE_FPN", "False",
    "SOLVER.SEARCH.WARMUP_ITERS", "0",
]  # fmt: skip
