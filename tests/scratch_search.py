"""Overrides that make the shipped search configs search from scratch: they search on the demo's
pretrained, frozen backbone, which the tests do not have. (A plain module, not a fixture, so that
module-level option lists can use it; pytest puts this folder on sys.path for tests/conftest.py.)"""

# The original's search (two levels, 'none' weighed, RepShare's 1x1s at PyTorch's default init,
# its alpha rate and weight decay); the shipped shapes config searches one level (docs/search.md).
ORIGINAL_SEARCH = [
    "SOLVER.SEARCH.ONE_LEVEL", "False",
    "SOLVER.SEARCH.BASE_LR_ALPHA", "0.005",
    "SOLVER.SEARCH.WEIGHT_DECAY_ALPHA", "0.001",
    "MODEL.FAD.DECOUPLE_INIT", "default",
    "MODEL.FAD.SEARCH_NONE", "True",
    "MODEL.BACKBONE.FEATURE_CACHE_MB", "0",
]  # fmt: skip
SCRATCH_SEARCH = [
    "MODEL.WEIGHT", "",
    "MODEL.BACKBONE.NORM", "BN",
    "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", "0",
    "MODEL.BACKBONE.FREEZE_FPN", "False",
    "SOLVER.SEARCH.WARMUP_ITERS", "0",
    *ORIGINAL_SEARCH,
]  # fmt: skip
