"""Default configuration, with the key names of the original FAD / FCOS (maskrcnn-benchmark) configs.

Keys the original had and fad does not use are still accepted (so the original YAMLs load); they are
listed in `INERT_KEYS` and ignored. fad's own additions are marked "fad:" below.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

_C = CN()

_C.MODEL = CN()
_C.MODEL.DEVICE = "cuda"  # falls back to cpu when CUDA is absent
_C.MODEL.META_ARCHITECTURE = "GeneralizedRNAS"
_C.MODEL.RPN_ONLY = True
_C.MODEL.FCOS_ON = True
_C.MODEL.FAD_ON = False  # True: FAD towers (searched when MODEL.FAD.SEARCH, else a genotype)
_C.MODEL.RETINANET_ON = False
_C.MODEL.MASK_ON = False
_C.MODEL.KEYPOINT_ON = False
_C.MODEL.CLS_AGNOSTIC_BBOX_REG = False
# fad: the model and its input batches in channels_last (NHWC) memory format, in training, search
# and evaluation (same results; faster convolutions on tensor cores and oneDNN)
_C.MODEL.CHANNELS_LAST = False
# fad: torch.compile the head's box and cls towers in training, search and evaluation (compiled
# at the first batch of each size; checkpoints load with and without it)
_C.MODEL.COMPILE = False
# fad: torch.compile's mode for MODEL.COMPILE: "default", "reduce-overhead" (CUDA graphs: no
# per-kernel launch cost, for fixed input sizes), "max-autotune", "max-autotune-no-cudagraphs"
_C.MODEL.COMPILE_MODE = "default"
# fad: how the towers run over the FPN levels in training, search and evaluation: "fused" (every
# level in one canvas, a search cell's edges batched; on a CPU only up to 2^18 input elements, the
# plain loop above) or "plain" (the modules, level by level); the same values up to float
# rounding, the same checkpoints (docs/performance.md)
_C.MODEL.COMPUTE_PATH = "fused"
# "" (random init), a torchvision weights name ("ResNet50_Weights.IMAGENET1K_V1"),
# "catalog://ImageNetPretrained/MSRA/R-50" (mapped to torchvision's ImageNet weights),
# "torchvision://resnet50", an http(s) URL, or a local file (backbone state_dict or a fad checkpoint).
_C.MODEL.WEIGHT = ""

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.CONV_BODY = "R-50-FPN-RETINANET"
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2
# fad: freeze the FPN too (with FREEZE_CONV_BODY_AT 5 and NORM FrozenBN the whole backbone is a
# fixed feature extractor, e.g. the demo's pretrained stage)
_C.MODEL.BACKBONE.FREEZE_FPN = False
# fad: with a frozen backbone (FREEZE_CONV_BODY_AT 5, FREEZE_FPN, FrozenBN), keep up to this many
# MiB of FPN features per input image and reuse them (0: off); see fad/modeling/feature_cache.py
_C.MODEL.BACKBONE.FEATURE_CACHE_MB = 0
_C.MODEL.BACKBONE.USE_GN = False
# fad: normalisation in the ResNet: "FrozenBN" (pretrained, as the original), "BN" or "GN" (scratch)
_C.MODEL.BACKBONE.NORM = "FrozenBN"

_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.NUM_GROUPS = 1
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
_C.MODEL.RESNETS.TRANS_FUNC = "BottleneckWithFixedBatchNorm"
_C.MODEL.RESNETS.STEM_FUNC = "StemWithFixedBatchNorm"
_C.MODEL.RESNETS.RES5_DILATION = 1
_C.MODEL.RESNETS.BACKBONE_OUT_CHANNELS = 256
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
_C.MODEL.RESNETS.STAGE_WITH_DCN = (False, False, False, False)
_C.MODEL.RESNETS.WITH_MODULATED_DCN = False
_C.MODEL.RESNETS.DEFORMABLE_GROUPS = 1

_C.MODEL.FPN = CN()
_C.MODEL.FPN.USE_GN = False
_C.MODEL.FPN.USE_RELU = False

# RetinaNet (MODEL.RETINANET_ON True, MODEL.FCOS_ON False): the original's keys and defaults
_C.MODEL.RETINANET = CN()
_C.MODEL.RETINANET.NUM_CLASSES = 81  # as the original: object classes + 1 (background)
_C.MODEL.RETINANET.ANCHOR_SIZES = (32, 64, 128, 256, 512)  # one per level, P3-P7
_C.MODEL.RETINANET.ASPECT_RATIOS = (0.5, 1.0, 2.0)  # height / width
# a tuple of its own: the same literal twice in a module is one object, which a dump would write
# as a YAML alias (&id001) that differs from the dump of a loaded config
_C.MODEL.RETINANET.ANCHOR_STRIDES = tuple([8, 16, 32, 64, 128])
_C.MODEL.RETINANET.STRADDLE_THRESH = 0  # the original's RetinaNet never discards anchors by it
_C.MODEL.RETINANET.OCTAVE = 2.0
_C.MODEL.RETINANET.SCALES_PER_OCTAVE = 3
# P6 from C5 (True) or P5 (False), for either detector. The original's default is True, and every
# FCOS config sets False; fad's default is False, the RetinaNet configs set True.
_C.MODEL.RETINANET.USE_C5 = False
_C.MODEL.RETINANET.NUM_CONVS = 4
_C.MODEL.RETINANET.BBOX_REG_WEIGHT = 4.0  # the box loss is divided by #positives x this
_C.MODEL.RETINANET.BBOX_REG_BETA = 0.11  # smooth L1 beta
_C.MODEL.RETINANET.PRE_NMS_TOP_N = 1000  # per level
_C.MODEL.RETINANET.FG_IOU_THRESHOLD = 0.5
_C.MODEL.RETINANET.BG_IOU_THRESHOLD = 0.4
_C.MODEL.RETINANET.LOSS_ALPHA = 0.25
_C.MODEL.RETINANET.LOSS_GAMMA = 2.0
_C.MODEL.RETINANET.PRIOR_PROB = 0.01
_C.MODEL.RETINANET.INFERENCE_TH = 0.05
_C.MODEL.RETINANET.NMS_TH = 0.4

# Keys of the original's two-stage parts that its RetinaNet configs set; fad accepts and ignores
# them (RPN_ONLY: no ROI heads), with the original's defaults.
_C.MODEL.RPN = CN()
_C.MODEL.RPN.USE_FPN = False
_C.MODEL.RPN.ANCHOR_STRIDE = (16,)
_C.MODEL.RPN.FG_IOU_THRESHOLD = 0.7
_C.MODEL.RPN.BG_IOU_THRESHOLD = 0.3
_C.MODEL.RPN.PRE_NMS_TOP_N_TRAIN = 12000
_C.MODEL.RPN.PRE_NMS_TOP_N_TEST = 6000
_C.MODEL.RPN.POST_NMS_TOP_N_TEST = 1000
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TEST = 2000
_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.USE_FPN = False
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512
_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR = "ResNet50Conv5ROIFeatureExtractor"
_C.MODEL.ROI_BOX_HEAD.PREDICTOR = "FastRCNNPredictor"
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_BOX_HEAD.POOLER_SCALES = (1.0 / 16,)

_C.MODEL.FCOS = CN()
_C.MODEL.FCOS.NUM_CLASSES = 81  # as the original: object classes + 1 (background)
_C.MODEL.FCOS.FPN_STRIDES = (8, 16, 32, 64, 128)
_C.MODEL.FCOS.PRIOR_PROB = 0.01
_C.MODEL.FCOS.INFERENCE_TH = 0.05
_C.MODEL.FCOS.NMS_TH = 0.6
_C.MODEL.FCOS.PRE_NMS_TOP_N = 1000
_C.MODEL.FCOS.LOSS_ALPHA = 0.25
_C.MODEL.FCOS.LOSS_GAMMA = 2.0
_C.MODEL.FCOS.CENTER_SAMPLING_RADIUS = 1.5
_C.MODEL.FCOS.IOU_LOSS_TYPE = "giou"
_C.MODEL.FCOS.NORM_REG_TARGETS = True
_C.MODEL.FCOS.CENTERNESS_ON_REG = True
_C.MODEL.FCOS.USE_DCN_IN_TOWER = False
_C.MODEL.FCOS.NUM_CONVS = 4

_C.MODEL.FAD = CN()
_C.MODEL.FAD.SEARCH = False
_C.MODEL.FAD.PLOT = True
_C.MODEL.FAD.CLSTOWER = True
_C.MODEL.FAD.NUM_CELLS_CLS = 2
_C.MODEL.FAD.NUM_NODES_CLS = 3
_C.MODEL.FAD.NUM_CHANNELS_CLS = 96
_C.MODEL.FAD.BOXTOWER = True
_C.MODEL.FAD.NUM_CELLS_BOX = 2
_C.MODEL.FAD.NUM_NODES_BOX = 3
_C.MODEL.FAD.NUM_CHANNELS_BOX = 96
_C.MODEL.FAD.REPSHARE = True  # fad: False builds every op as its own module (plain DARTS)
# fad: search supernets only: 1 / PARTIAL_CHANNELS of an edge's channels through its ops, and a
# weight per edge, softmax(beta) (PC-DARTS; SOLVER.SEARCH.METHOD "pcdarts" needs both)
_C.MODEL.FAD.PARTIAL_CHANNELS = 1
# fad: RepShare's decouple 1x1 convs start as PyTorch inits them ("default", as the original) or as
# the identity ("identity": every op's result starts at the scale of the op's own output)
_C.MODEL.FAD.DECOUPLE_INIT = "default"
# fad: search supernets only: False leaves 'none' out of the ops the alphas weigh (a genotype never
# keeps it; its weight only absorbs what the loss asks of an edge's scale). True: as the original
_C.MODEL.FAD.SEARCH_NONE = True
# fad: search supernets only: False fixes the scale of every op's output (GroupNorm affine frozen at
# (1, 0), RepShare decouple 1x1s frozen as the identity), DARTS's affine-free search ops, so that the
# weights cannot undo what the alphas weigh. True: learned, as the original
_C.MODEL.FAD.SEARCH_AFFINE = True
_C.MODEL.FAD.EDGE_NORMALIZATION = False
_C.MODEL.FAD.SPACE = "released"  # fad: "released" (10 ops + none) or "with_r3" (dilation-3 too)

_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = (800,)
_C.INPUT.MAX_SIZE_TRAIN = 1333
_C.INPUT.MIN_SIZE_RANGE_TRAIN = (-1, -1)
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
# torchvision convention (RGB in [0, 1], ImageNet statistics), as torchvision's backbones expect
_C.INPUT.PIXEL_MEAN = (0.485, 0.456, 0.406)
_C.INPUT.PIXEL_STD = (0.229, 0.224, 0.225)
_C.INPUT.TO_BGR255 = False
_C.INPUT.HORIZONTAL_FLIP_PROB_TRAIN = 0.5

_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()
_C.DATASETS.TEST = ()

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.SIZE_DIVISIBILITY = 32
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
# fad: training skips unreadable images; more than this fraction of them stops the run
_C.DATALOADER.MAX_BAD_IMAGE_FRACTION = 0.01

_C.SOLVER = CN()
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.OPTIMIZER = "SGD"  # fad: "SGD" (the original) or "AdamW"
# fad: torch's fused SGD/AdamW kernels where the device has them (same update to float32
# rounding, no per-parameter Python); False: the per-parameter loop (fad's numbers before 2026-12-04)
_C.SOLVER.FUSED_OPTIMIZER = True
_C.SOLVER.BASE_LR = 0.01
_C.SOLVER.BIAS_LR_FACTOR = 2.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.WEIGHT_DECAY = 0.0001
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = (30000,)
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3
_C.SOLVER.WARMUP_ITERS = 500
_C.SOLVER.WARMUP_METHOD = "linear"
_C.SOLVER.CHECKPOINT_PERIOD = 2500
_C.SOLVER.IMS_PER_BATCH = 16
_C.SOLVER.CLIP_GRAD_NORM = 0.0  # fad: 0 disables; the search always clips at 20 as the original
# fad: mixed precision of training and search: "" or "off" (float32), "bf16" or "fp16" (with loss
# scaling); autocast forward passes, float32 parameters, optimizer states and losses
_C.SOLVER.AMP = ""
_C.SOLVER.SEARCH = CN()
_C.SOLVER.SEARCH.BASE_LR_ALPHA = 3e-4
_C.SOLVER.SEARCH.WEIGHT_DECAY_ALPHA = 1e-3
_C.SOLVER.SEARCH.BETAS_ALPHA = (0.5, 0.999)
_C.SOLVER.SEARCH.FIRST_ORDER = True
# fad: the search method, fad.search.methods.METHODS: "darts_1st", "darts_2nd", "gdas", "pcdarts";
# "" is DARTS of FIRST_ORDER's order (the original's key)
_C.SOLVER.SEARCH.METHOD = ""
# fad: first-order methods: True steps the alphas after the weight step, on its gradient (one
# forward and backward per iteration; no alpha batch), False: on a batch of the alpha stream
_C.SOLVER.SEARCH.ONE_LEVEL = False
# fad: sampled methods (gdas): the Gumbel-softmax temperature at the first and the last alpha step
_C.SOLVER.SEARCH.TAU = (10.0, 0.1)
# fad: a head within a budget (fad/search/budget.py): GFLOPs of the trained head (COST_CELLS cells per
# tower, 0: the search's own) on one INPUT.MIN_SIZE_TEST x MAX_SIZE_TEST image; 0 disables. Above it
# the alpha loss gains COST_WEIGHT * (expected / budget - 1)
_C.SOLVER.SEARCH.COST_BUDGET = 0.0
_C.SOLVER.SEARCH.COST_WEIGHT = 1.0
_C.SOLVER.SEARCH.COST_CELLS = 0
# fad: discretization pressure (fad/search/sharpen.py): the alpha loss gains ENTROPY_WEIGHT x (0 at the
# first alpha step, rising linearly to 1 at the last) x the towers' mean edge entropies; 0 disables
_C.SOLVER.SEARCH.ENTROPY_WEIGHT = 0.0
_C.SOLVER.SEARCH.CLIP_GRAD_NORM = 20.0
_C.SOLVER.SEARCH.ALPHA_HOLDOUT = 0.0  # fad: fraction of train images kept for the alpha stream
# fad: the first WARMUP_ITERS iterations train the weights only; the alphas start moving after
_C.SOLVER.SEARCH.WARMUP_ITERS = 0
# fad: True puts the alphas in the weights' optimizer too (lr, decay, momentum of the weights), so
# they also move on the weight batch's loss, as in the released FAD code; False: the paper's DARTS
_C.SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP = False

_C.TEST = CN()
_C.TEST.EXPECTED_RESULTS = []
_C.TEST.EXPECTED_RESULTS_SIGMA_TOL = 4
_C.TEST.IMS_PER_BATCH = 8
_C.TEST.DETECTIONS_PER_IMG = 100

_C.OUTPUT_DIR = "."
_C.PATHS_CATALOG = ""
_C.SEED = 0  # fad: seeds Python, NumPy and torch (per rank in distributed runs)

# Keys of the original that configure parts fad does not have (masks, DCN, caffe2 specifics,
# the two-stage RPN / ROI heads: a section name stands for all its keys).
INERT_KEYS = frozenset(
    {
        "MODEL.META_ARCHITECTURE",
        "MODEL.RPN_ONLY",
        "MODEL.MASK_ON",
        "MODEL.KEYPOINT_ON",
        "MODEL.CLS_AGNOSTIC_BBOX_REG",
        "MODEL.RESNETS.STRIDE_IN_1X1",
        "MODEL.RESNETS.TRANS_FUNC",
        "MODEL.RESNETS.STEM_FUNC",
        "MODEL.RESNETS.STAGE_WITH_DCN",
        "MODEL.RESNETS.WITH_MODULATED_DCN",
        "MODEL.RESNETS.DEFORMABLE_GROUPS",
        "MODEL.RETINANET.STRADDLE_THRESH",
        "MODEL.RPN",
        "MODEL.ROI_HEADS",
        "MODEL.ROI_BOX_HEAD",
        "MODEL.FAD.PLOT",
        "TEST.EXPECTED_RESULTS",
        "TEST.EXPECTED_RESULTS_SIGMA_TOL",
        "PATHS_CATALOG",
    }
)


def get_default_config() -> CN:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()
