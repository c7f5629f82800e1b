"""The cases of `bench/hostile.py`: bad inputs and faults, each built in its own folder.

A case is registered with the group it belongs to (config, train, data, predict, export, eval,
api, demo, search, files) and what a careful program does: "error" (a one-line refusal, exit 2)
or "ok" (exit 0). Its builder makes the inputs and returns a `Spec`: the command, the files that
must come out unchanged, and an optional check of the output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHAPES_CFG = REPO / "fad" / "configs" / "shapes" / "fcos_imprv_R_18_FPN.yaml"
SEARCH_CFG = REPO / "fad" / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
TINY = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64", "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32", "INPUT.MIN_SIZE_TRAIN", "(96,)",
    "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "1", "TEST.IMS_PER_BATCH", "4",
    "DATALOADER.NUM_WORKERS", "0", "MODEL.FCOS.NUM_CONVS", "1", "SOLVER.MAX_ITER", "2",
    "SOLVER.CHECKPOINT_PERIOD", "1", "MODEL.DEVICE", "cpu",
]  # fmt: skip
SCRATCH_SEARCH = [
    "MODEL.WEIGHT", "", "MODEL.BACKBONE.NORM", "BN", "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", "0",
    "MODEL.BACKBONE.FREEZE_FPN", "False", "SOLVER.SEARCH.WARMUP_ITERS", "0",
]  # fmt: skip


@dataclass
class Spec:
    """One built case: `python ARGV` run in `cwd` (default the case's folder)."""

    argv: list[str]
    protect: list[Path] = field(default_factory=list)
    check: Callable[[str], str] | None = None  # output -> "" or what is wrong
    message: str = ""  # must appear in a refusal
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    umask: int | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    expect: str = ""


@dataclass
class Case:
    name: str
    group: str
    expect: str
    builder: Callable[[Path], Spec]
    message: str = ""

    def build(self, folder: Path) -> Spec:
        spec = self.builder(folder)
        spec.expect = self.expect
        spec.message = spec.message or self.message
        return spec


CASES: list[Case] = []


def case(group: str, expect: str, message: str = ""):
    def register(builder: Callable[[Path], Spec]) -> Callable[[Path], Spec]:
        CASES.append(Case(builder.__name__, group, expect, builder, message))
        return builder

    return register


class Workspace:
    """The shared inputs, made once: a tiny shapes set, a trained weights file, an ONNX file."""

    root: Path
    train: str
    val: str
    val_dir: Path
    train_dir: Path
    weights: Path
    onnx: Path

    @classmethod
    def prepare(cls, root: Path) -> None:
        cls.root = root
        shapes = root / "shapes"
        if not shapes.exists():
            fad(["data", "shapes", "--out", str(shapes), "--train", "12", "--val", "6"]
                + ["--min-size", "96", "--max-size", "128"])  # fmt: skip
        ann = shapes / "annotations"
        cls.train_dir, cls.val_dir = shapes / "train", shapes / "val"
        cls.train = f"{shapes / 'train'}@{ann / 'instances_train.json'}"
        cls.val = f"{shapes / 'val'}@{ann / 'instances_val.json'}"
        out = root / "trained"
        cls.weights = out / "model_final.pth"
        if not cls.weights.exists():
            fad(["train", *config(out), "--skip-test", "MODEL.FCOS.INFERENCE_TH", "0.0"])
        cls.onnx = root / "model.onnx"
        if not cls.onnx.exists():
            fad(["export", str(cls.weights), "--format", "onnx", "--out", str(cls.onnx)])


def fad(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "fad", *args], check=True, capture_output=True)


def config(out: Path | str, *extra: str) -> list[str]:
    """`--config-file` and the overrides of a tiny training run into `out`."""
    names = ["DATASETS.TRAIN", f"('{Workspace.train}',)", "DATASETS.TEST", f"('{Workspace.val}',)"]
    return ["--config-file", str(SHAPES_CFG), *TINY, *names, "OUTPUT_DIR", str(out), *extra]


def train(out: Path | str, *extra: str, skip_test: bool = True) -> list[str]:
    return ["-m", "fad", "train", *(["--skip-test"] if skip_test else []), *config(out, *extra)]


def copy_images(folder: Path, count: int = 3) -> Path:
    images = folder / "images"
    images.mkdir()
    for src in sorted(Workspace.val_dir.glob("*.jpg"))[:count]:
        shutil.copy(src, images / src.name)
    return images


def copy_set(folder: Path, split: str = "train") -> tuple[Path, Path, str]:
    """A private copy of a split: (image folder, json, '@' name)."""
    src = Workspace.train_dir if split == "train" else Workspace.val_dir
    images = folder / split
    shutil.copytree(src, images)
    ann = folder / f"{split}.json"
    shutil.copy(src.parent / "annotations" / f"instances_{split}.json", ann)
    return images, ann, f"{images}@{ann}"


def add_image(images: Path, ann: Path, name: str, size: tuple[int, int]) -> Path:
    path = images / name
    Image.new("RGB", size, (120, 120, 120)).save(path)
    data = json.loads(ann.read_text())
    image_id = max(i["id"] for i in data["images"]) + 1
    data["images"].append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
    data["annotations"].append(
        {
            "id": max(a["id"] for a in data["annotations"]) + 1,
            "image_id": image_id,
            "category_id": data["categories"][0]["id"],
            "bbox": [0, 0, min(size[0], 40), size[1]],
        }
    )
    ann.write_text(json.dumps(data))
    return path


def pixel_bomb(path: Path, side: int = 13000) -> Path:
    """A grey PNG of side x side pixels in a few hundred KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def prior_run(out: Path) -> list[Path]:
    """An earlier run's config.yaml and log.txt in `out` (to be kept byte for byte)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text("# the config of an earlier run\n")
    (out / "log.txt").write_text("the log of an earlier run\n")
    return [out / "config.yaml", out / "log.txt"]


def user_tmp_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "notes.tmp", folder / ".draft.md.tmp", folder / ".model.pth.1a2b3c4d.tmp"]
    for path in paths:
        path.write_text("the user's own")
    return paths


def contains(*texts: str) -> Callable[[str], str]:
    def check(output: str) -> str:
        missing = [t for t in texts if t not in output]
        return f"output lacks {missing[0]!r}" if missing else ""

    return check


def spoilt_weights(folder: Path, change: Callable[[dict], None]) -> Path:
    ckpt = torch.load(Workspace.weights, weights_only=True)
    change(ckpt)
    path = folder / "spoilt.pth"
    torch.save(ckpt, path)
    return path


def predict_with(weights: Path, folder: Path, *extra: str) -> Spec:
    images = copy_images(folder)
    out = folder / "preds"
    return Spec(["-m", "fad", "predict", str(weights), str(images), "--out", str(out), *extra],
                protect=[images])  # fmt: skip


# --- config: files and overrides --------------------------------------------------------------

ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdef", "bcdefg"))
    + "DATASETS:\n  TRAIN: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
)


def _config_file(name: str, content: bytes | str | None, message: str, kind: str = "file") -> None:
    def build(folder: Path) -> Spec:
        path = folder / "config.yaml"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "sparse":
            with open(path, "wb") as f:
                f.truncate(200 * 2**20)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        return Spec(["-m", "fad", "config", "--config-file", str(path)])

    CASES.append(Case(name, "config", "error", build, message))


_config_file("alias_bomb", ALIAS_BOMB, "more than 100000 YAML nodes")
_config_file("yaml_200_mb", None, "more than the 1.0 MiB allowed", "sparse")
_config_file("config_named_pipe", None, "is a named pipe, not a regular file", "fifo")
_config_file("config_folder", None, "is a folder, not a regular file", "dir")
_config_file("config_latin1", "SEED: 0 # r\xe9glage\n".encode("latin-1"), "not UTF-8 text")
_config_file("config_binary", bytes(range(256)) * 4, "not UTF-8 text")
_config_file("yaml_1000_deep", "A: " + "[" * 1000 + "]" * 1000 + "\n", "nested too deeply")
_config_file("yaml_python_tag", "SEED: !!python/object/apply:os.system [id]\n", "")
_config_file("yaml_huge_key", "K" * 500_000 + ": 1\n", "invalid YAML")
_config_file("yaml_list_top", "- SEED\n- 0\n", "expected a mapping")
_config_file("yaml_unknown_key", "SOLVER:\n  BASE_LRR: 0.1\n", "did you mean SOLVER.BASE_LR")

OVERRIDES = {
    "min_size_100000": (["INPUT.MIN_SIZE_TRAIN", "(100000,)"], "must be <= 4096"),
    "max_size_test_100000": (["INPUT.MAX_SIZE_TEST", "100000"], "must be <= 4096"),
    "size_range_huge": (["INPUT.MIN_SIZE_RANGE_TRAIN", "(10, 1000000000)"], "must be <= 4096"),
    "scales_per_octave": (["MODEL.RETINANET.SCALES_PER_OCTAVE", "100000"], "must be <= 16"),
    "aspect_ratios_100": (
        ["MODEL.RETINANET.ASPECT_RATIOS", str(tuple([1.0] * 100))],
        "at most 16 ratios",
    ),
    "num_convs_100000": (["MODEL.FCOS.NUM_CONVS", "100000"], "must be <= 32"),
    "fad_cells_10000": (["MODEL.FAD.NUM_CELLS_BOX", "10000"], "must be <= 16"),
    "workers_100000": (["DATALOADER.NUM_WORKERS", "100000"], "must be <= 128"),
    "batch_1e9": (["SOLVER.IMS_PER_BATCH", "1000000000"], "must be <= 1024"),
    "max_iter_1e30": (["SOLVER.MAX_ITER", "10**30"], "SOLVER.MAX_ITER"),
    "max_iter_1e30_literal": (["SOLVER.MAX_ITER", str(10**30)], "must be <= 1000000000"),
    "seed_negative": (["SEED", "-1"], "SEED must be in [0, "),
    "gamma_negative": (["SOLVER.GAMMA", "-1"], "SOLVER.GAMMA must be > 0"),
    "warmup_factor_negative": (["SOLVER.WARMUP_FACTOR", "-1"], "WARMUP_FACTOR must be in (0, 1]"),
    "bias_lr_factor_negative": (["SOLVER.BIAS_LR_FACTOR", "-1"], "BIAS_LR_FACTOR must be > 0"),
    "base_lr_nan": (["SOLVER.BASE_LR", "nan"], "SOLVER.BASE_LR must be a number"),
    "pixel_std_zero": (["INPUT.PIXEL_STD", "(0.0, 0.0, 0.0)"], "INPUT.PIXEL_STD must be > 0"),
    "device_quantum": (["MODEL.DEVICE", "quantum"], "MODEL.DEVICE must be 'cpu', 'cuda'"),
    "dataset_not_a_name": (["DATASETS.TRAIN", "((1, 2),)"], "must hold dataset names"),
    "dataset_empty_name": (["DATASETS.TEST", "('',)"], "must hold dataset names"),
    "steps_decreasing": (["SOLVER.STEPS", "(30, 10)"], "SOLVER.STEPS must be increasing"),
    "detections_zero": (["TEST.DETECTIONS_PER_IMG", "0"], "must be >= 1"),
    "override_100k_chars": (["SOLVER.STEPS", "(" + "1," * 50_000 + ")"], "more than the 10000"),
    "override_without_value": (["SOLVER.BASE_LR"], "has no value"),
    "beta_alpha_two": (["SOLVER.SEARCH.BETAS_ALPHA", "(2.0, 0.9)"], "BETAS_ALPHA must be two"),
}
for _name, (_opts, _message) in OVERRIDES.items():
    CASES.append(
        Case(
            _name,
            "config",
            "error",
            lambda folder, opts=_opts: Spec(["-m", "fad", "config", *opts]),
            _message,
        )
    )


# --- train: folders, weights, images ----------------------------------------------------------


@case("train", "error", "is not a folder")
def output_dir_under_a_file(folder: Path) -> Spec:
    (folder / "file").write_text("x")
    return Spec(train(folder / "file" / "out"), protect=[folder / "file"])


@case("train", "error", "is a symbolic link to")
def output_dir_dangling_link(folder: Path) -> Spec:
    (folder / "out").symlink_to(folder / "nowhere")
    return Spec(train(folder / "out"))


@case("train", "error", "Too many levels of symbolic links")
def output_dir_looping_link(folder: Path) -> Spec:
    (folder / "out").symlink_to(folder / "out")
    return Spec(train(folder / "out"))


@case("train", "ok")
def output_dir_empty_string_keeps_user_tmp_files(folder: Path) -> Spec:
    kept = user_tmp_files(folder / "work")
    return Spec(train(""), protect=kept, cwd=folder / "work")


@case("train", "ok")
def output_dir_symlinked_keeps_user_tmp_files(folder: Path) -> Spec:
    kept = user_tmp_files(folder / "real")
    (folder / "link").symlink_to(folder / "real")
    return Spec(train(folder / "link"), protect=kept)


@case("train", "error", "is in use by another fad run")
def second_run_into_a_busy_folder(folder: Path) -> Spec:
    out = folder / "out"
    first = subprocess.Popen(
        [sys.executable, *train(out, "SOLVER.MAX_ITER", "2000")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while not (out / "model_0000001.pth").exists() and time.monotonic() < deadline:
        time.sleep(0.2)

    def stop() -> None:
        first.send_signal(signal.SIGKILL)
        first.wait()

    return Spec(train(out, "SEED", "7"), protect=[out / "config.yaml"], cleanups=[stop])


@case("train", "error", "does not match the model")
def checkpoint_of_another_model(folder: Path) -> Spec:
    out = folder / "out"
    shutil.copytree(Workspace.weights.parent, out)
    kept = [*prior_run(out), out / "model_final.pth"]
    return Spec(train(out, "MODEL.FCOS.NUM_CONVS", "2", "SOLVER.MAX_ITER", "5"), protect=kept)


def _weight_case(name: str, make: Callable[[Path], Path], message: str) -> None:
    def build(folder: Path) -> Spec:
        out = folder / "out"
        weight = make(folder)
        return Spec(train(out, "MODEL.WEIGHT", str(weight)), protect=prior_run(out))

    CASES.append(Case(name, "train", "error", build, message))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _unsafe(folder: Path) -> Path:
    torch.save({"model": {}, "x": _Evil()}, folder / "w.pth")
    return folder / "w.pth"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "w.pth")
    return folder / "w.pth"


def _text(folder: Path) -> Path:
    (folder / "w.pth").write_text("not weights")
    return folder / "w.pth"


def _mkdir(folder: Path) -> Path:
    (folder / "w.pth").mkdir()
    return folder / "w.pth"


_weight_case("weight_unsafe_pickle", _unsafe, "refused for safety")
_weight_case("weight_named_pipe", _fifo, "is a named pipe")
_weight_case("weight_folder", _mkdir, "MODEL.WEIGHT")
_weight_case("weight_text_file", _text, "MODEL.WEIGHT")
_weight_case("weight_missing", lambda f: f / "missing.pth", "file not found")


def _train_with_set(name: str, spoil: Callable[[Path, Path], None], check: str) -> None:
    def build(folder: Path) -> Spec:
        images, ann, dataset = copy_set(folder)
        spoil(images, ann)
        out = folder / "out"
        argv = train(out, "DATASETS.TRAIN", f"('{dataset}',)", "SOLVER.MAX_ITER", "6")
        argv += ["DATALOADER.MAX_BAD_IMAGE_FRACTION", "0.2"]
        return Spec(argv, protect=[images], check=contains(check))

    CASES.append(Case(name, "train", "ok", build))


_train_with_set(
    "train_degenerate_image",
    lambda images, ann: add_image(images, ann, "thin.jpg", (20000, 2)),
    "skipping degenerate training image",
)
_train_with_set(
    "train_pixel_bomb_image",
    lambda images, ann: pixel_bomb(images / "000002.jpg"),
    "13000x13000 (169 megapixels)",
)
_train_with_set(
    "train_named_pipe_image",
    lambda images, ann: ((images / "000003.jpg").unlink(), os.mkfifo(images / "000003.jpg")),
    "image is not a regular file",
)
_train_with_set(
    "train_truncated_image",
    lambda images, ann: (images / "000004.jpg").write_bytes(
        (images / "000004.jpg").read_bytes()[:300]
    ),
    "skipping unreadable training image",
)


@case("train", "error", "training images could not be read or used")
def train_degenerate_over_budget(folder: Path) -> Spec:
    images, ann, dataset = copy_set(folder)
    add_image(images, ann, "thin.jpg", (20000, 2))
    return Spec(train(folder / "out", "DATASETS.TRAIN", f"('{dataset}',)"), protect=[images])


@case("train", "ok")
def resume_past_a_truncated_checkpoint(folder: Path) -> Spec:
    out = folder / "out"
    subprocess.run([sys.executable, *train(out, "SOLVER.MAX_ITER", "2")], check=True,
                   capture_output=True)  # fmt: skip
    newest = out / (out / "last_checkpoint").read_text().strip()
    newest.write_bytes(newest.read_bytes()[:1000])
    kept = out / "model_0000001.pth"
    aside = newest.with_name(newest.name + ".unreadable-1")
    return Spec(
        train(out, "SOLVER.MAX_ITER", "3"),
        protect=[kept],
        check=lambda text: "" if aside.exists() else "the truncated checkpoint was not set aside",
    )


@case("train", "error", "a fresh start would overwrite it")
def fresh_on_a_loadable_checkpoint(folder: Path) -> Spec:
    out = folder / "out"
    shutil.copytree(Workspace.weights.parent, out)
    return Spec([*train(out), "--fresh"], protect=[out])


@case("train", "error", "is neither a genotype preset")
def genotype_file_named_pipe(folder: Path) -> Spec:
    os.mkfifo(folder / "genotype.log")
    return Spec([*train(folder / "out", "MODEL.FAD_ON", "True"), "--genotype-file",
                 str(folder / "genotype.log")])  # fmt: skip


@case("train", "error", "")
def genotype_file_binary(folder: Path) -> Spec:
    (folder / "genotype.log").write_bytes(bytes(range(256)))
    return Spec([*train(folder / "out"), "--genotype-file", str(folder / "genotype.log")])


@case("train", "ok")
def device_cuda_without_a_gpu_says_so(folder: Path) -> Spec:
    argv = train(folder / "out", "MODEL.DEVICE", "cuda")
    check = contains("no CUDA device on this machine; running on the CPU")
    return Spec(argv, check=check if not torch.cuda.is_available() else None)


@case("files", "ok")
def files_get_the_umask_modes(folder: Path) -> Spec:
    out = folder / "out"

    def check(_: str) -> str:
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
        wrong = {n: oct(m) for n, m in modes.items() if m != 0o664}
        return f"modes {wrong}" if wrong or not modes else ""

    return Spec(train(out), umask=0o002, check=check)


# --- data check -------------------------------------------------------------------------------


def _json_case(name: str, text: str | bytes, message: str, kind: str = "file") -> None:
    def build(folder: Path) -> Spec:
        ann = folder / "ann.json"
        if kind == "fifo":
            os.mkfifo(ann)
        elif kind == "dir":
            ann.mkdir()
        else:
            ann.write_bytes(text.encode() if isinstance(text, str) else text)
        return Spec(["-m", "fad", "data", "check", f"{Workspace.train_dir}@{ann}"])

    CASES.append(Case(name, "data", "error", build, message))


def _coco(**changes) -> str:
    data = json.loads(
        (Workspace.train_dir.parent / "annotations" / "instances_train.json").read_text()
    )
    for key, change in changes.items():
        change(data[key])
    return json.dumps(data)


_json_case("json_nested_100000", "[" * 100_000 + "]" * 100_000, "nested too deeply")
_json_case("json_100000_digit_number", '{"images": ' + "9" * 100_000 + "}", "invalid json")
_json_case("json_top_level_list", "[]", "expected a json object at the top level")
_json_case("json_images_not_a_list", '{"images": 5, "annotations": [], "categories": []}', "")
_json_case("json_named_pipe", "", "not a regular file", "fifo")
_json_case("json_folder", "", "not a regular file", "dir")
_json_case("json_latin1", '{"images": "\xe9"}'.encode("latin-1"), "cannot read annotation")
_json_case("json_truncated", '{"images": [', "invalid json at line 1")


@case("data", "error", "'width' must be an integer below 2**63")
def json_huge_width(folder: Path) -> Spec:
    ann = folder / "ann.json"
    ann.write_text(_coco(images=lambda images: images[0].update(width=10**400)))
    return Spec(["-m", "fad", "data", "check", f"{Workspace.train_dir}@{ann}"])


@case("data", "error", "'bbox' must be 4 numbers")
def json_huge_bbox(folder: Path) -> Spec:
    ann = folder / "ann.json"
    ann.write_text(_coco(annotations=lambda anns: anns[0].update(bbox=[0, 0, 10**400, 5])))
    return Spec(["-m", "fad", "data", "check", f"{Workspace.train_dir}@{ann}"])


@case("data", "error", "unreadable or degenerate")
def data_check_degenerate_image(folder: Path) -> Spec:
    images, ann, dataset = copy_set(folder)
    add_image(images, ann, "thin.jpg", (20000, 2))
    return Spec(["-m", "fad", "data", "check", dataset], protect=[images],
                check=contains("degenerate image", "20000x2 is too elongated"))  # fmt: skip


@case("data", "error", "a training run would stop")
def data_check_pixel_bomb(folder: Path) -> Spec:
    images, _, dataset = copy_set(folder)
    pixel_bomb(images / "000005.jpg")
    return Spec(["-m", "fad", "data", "check", dataset], check=contains("13000x13000"))


@case("data", "ok")
def data_check_named_pipe_image_within_budget(folder: Path) -> Spec:
    images, _, dataset = copy_set(folder)
    (images / "000006.jpg").unlink()
    os.mkfifo(images / "000006.jpg")
    argv = ["-m", "fad", "data", "check", dataset, "--max-bad-fraction", "0.2"]
    return Spec(argv, check=contains("is a named pipe, not a regular file"))


# --- predict ----------------------------------------------------------------------------------


@case("predict", "error", "is the folder of the images")
def predict_out_is_the_input_folder(folder: Path) -> Spec:
    images = copy_images(folder)
    argv = ["-m", "fad", "predict", str(Workspace.weights), str(images), "--out", str(images)]
    return Spec(argv, protect=[images])


@case("predict", "error", "is the folder of the images")
def predict_out_is_the_input_folder_spelt_otherwise(folder: Path) -> Spec:
    images = copy_images(folder)
    out = f"{folder}/./images/"
    return Spec(["-m", "fad", "predict", str(Workspace.weights), str(images), "--out", out],
                protect=[images])  # fmt: skip


@case("predict", "error", "is the folder of the images")
def predict_single_image_into_its_folder(folder: Path) -> Spec:
    images = copy_images(folder)
    one = sorted(images.iterdir())[0]
    argv = ["-m", "fad", "predict", str(Workspace.weights), str(one), "--out", str(images)]
    return Spec(argv, protect=[images])


@case("predict", "ok")
def predict_images_sharing_a_stem(folder: Path) -> Spec:
    spec = predict_with(Workspace.weights, folder)
    images = spec.protect[0]
    first = sorted(images.iterdir())[0]
    Image.open(first).save(images / f"{first.stem}.png")
    out = folder / "preds"

    def check(_: str) -> str:
        pictures = sorted(p.name for p in out.glob("*.jpg"))
        return "" if len(pictures) == 4 else f"pictures {pictures}"

    spec.check = check
    return spec


def _predict_bad_image(name: str, make: Callable[[Path], object], text: str) -> None:
    def build(folder: Path) -> Spec:
        spec = predict_with(Workspace.weights, folder)
        make(spec.protect[0])
        out = folder / "preds"

        def check(_: str) -> str:
            result = json.loads((out / "predictions.json").read_text())
            errors = " ".join(s["error"] for s in result["skipped"])
            ok = result["predicted"] == 3 and text in errors
            return "" if ok else f"predicted {result['predicted']}, skipped: {errors[:100]}"

        spec.check = check
        return spec

    CASES.append(Case(name, "predict", "ok", build))


_predict_bad_image("predict_named_pipe_image", lambda d: os.mkfifo(d / "cam.jpg"), "named pipe")
_predict_bad_image("predict_pixel_bomb", lambda d: pixel_bomb(d / "huge.png"), "megapixels")
_predict_bad_image(
    "predict_degenerate_image",
    lambda d: Image.new("RGB", (20000, 2)).save(d / "thin.png"),
    "too elongated",
)
_predict_bad_image(
    "predict_html_as_jpg", lambda d: (d / "page.jpg").write_text("<html></html>"), "cannot read"
)
_predict_bad_image("predict_folder_named_jpg", lambda d: (d / "dir.jpg").mkdir(), "a folder")

for _threshold in ("nan", "-1", "2", "inf"):
    CASES.append(
        Case(
            f"predict_score_threshold_{_threshold}",
            "predict",
            "error",
            lambda folder, t=_threshold: predict_with(
                Workspace.weights, folder, f"--score-threshold={t}"
            ),
            "must be a number in [0, 1]",
        )
    )


def _spoilt_case(name: str, change: Callable[[dict], None], message: str, group="predict"):
    def build(folder: Path) -> Spec:
        return predict_with(spoilt_weights(folder, change), folder)

    CASES.append(Case(name, group, "error", build, message))


_spoilt_case("meta_class_names_a_number", lambda c: c["meta"].update(class_names=5), "class_names")
_spoilt_case(
    "meta_repeated_class_names",
    lambda c: c["meta"].update(class_names=["circle"] * len(c["meta"]["class_names"])),
    "repeats a name",
)
_spoilt_case(
    "meta_repeated_category_ids",
    lambda c: c["meta"].update(category_ids=[1] * len(c["meta"]["class_names"])),
    "repeats an id",
)
_spoilt_case("meta_category_ids_count", lambda c: c["meta"].update(category_ids=[1]), "ids for")
_spoilt_case("meta_ids_as_text", lambda c: c["meta"].update(category_ids=["a"]), "category_ids")
_spoilt_case("meta_not_a_dict", lambda c: c.update(meta=[1, 2]), "stored meta is not a dict")
_spoilt_case("meta_config_a_number", lambda c: c["meta"].update(config=7), "'config' is not text")
_spoilt_case(
    "meta_config_alias_bomb",
    lambda c: c["meta"].update(config=ALIAS_BOMB),
    "more than 100000 YAML nodes",
)
_spoilt_case(
    "meta_config_unknown_key",
    lambda c: c["meta"].update(config="MODEL:\n  NOPE: 1\n"),
    "unknown config key MODEL.NOPE",
)
_spoilt_case(
    "weights_nan",
    lambda c: next(v for v in c["model"].values() if v.is_floating_point()).fill_(float("nan")),
    "holds non-finite values",
)
_spoilt_case(
    "weights_integer_tensor",
    lambda c: c["model"].update(
        {k: v.long() for k, v in list(c["model"].items()) if k.endswith("cls_logits.weight")}
    ),
    "wrong type",
)
_spoilt_case("weights_no_model", lambda c: c.pop("model"), "not a fad checkpoint")


@case("predict", "error", "not found")
def predict_missing_weights(folder: Path) -> Spec:
    return predict_with(folder / "missing.pth", folder)


@case("predict", "error", "MODEL.WEIGHT")
def predict_weights_named_pipe(folder: Path) -> Spec:
    os.mkfifo(folder / "w.pth")
    return predict_with(folder / "w.pth", folder)


@case("predict", "error", "refused for safety")
def predict_unsafe_weights(folder: Path) -> Spec:
    return predict_with(_unsafe(folder), folder)


@case("predict", "error", "no images")
def predict_empty_folder(folder: Path) -> Spec:
    (folder / "empty").mkdir()
    argv = ["-m", "fad", "predict", str(Workspace.weights), str(folder / "empty")]
    return Spec([*argv, "--out", str(folder / "preds")])


@case("predict", "error", "--out")
def predict_out_under_a_file(folder: Path) -> Spec:
    (folder / "file").write_text("x")
    return Spec(predict_with(Workspace.weights, folder).argv[:-1] + [str(folder / "file" / "p")])


def _onnx_case(name: str, meta: dict | None, message: str, outputs=None, names=None) -> None:
    def build(folder: Path) -> Spec:
        import onnx
        from onnx import helper

        model = onnx.load(str(Workspace.onnx))
        stored = json.loads({p.key: p.value for p in model.metadata_props}["fad"])
        if meta is not None:
            helper.set_model_props(model, {"fad": json.dumps({**stored, **meta})})
        if names:
            for output in model.graph.output:
                output.name = names.get(output.name, output.name)
            for node in model.graph.node:
                node.output[:] = [names.get(o, o) for o in node.output]
        path = folder / "model.onnx"
        onnx.save(model, str(path))
        return predict_with(path, folder)

    CASES.append(Case(name, "predict", "error", build, message))


_onnx_case("onnx_size_120_gb", {"size": [200000, 200000]}, "each side must be in [32, 4096]")
_onnx_case("onnx_size_text", {"size": ["96", "128"]}, "'size': expected 2 integers")
_onnx_case("onnx_repeated_ids", {"category_ids": [1, 1, 1]}, "repeated values")
_onnx_case("onnx_ids_fewer_than_names", {"category_ids": [1]}, "as many class_names")
_onnx_case("onnx_class_names_string", {"class_names": "abc"}, "'class_names'")
_onnx_case("onnx_format_torchscript", {"format": "torchscript"}, "the file is onnx")
_onnx_case("onnx_labels_renumbered", {"category_ids": [11, 12, 13]}, "output 'labels' holds")
_onnx_case("onnx_output_renamed", None, "the graph has no output 'boxes'", names={"boxes": "bx"})
_onnx_case("onnx_pixel_std_zero", {"pixel_std": [0, 0, 0]}, "'pixel_std' must be > 0")


@case("predict", "error", "is not a valid ONNX model")
def onnx_garbage(folder: Path) -> Spec:
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage" * 100)
    return predict_with(folder / "model.onnx", folder)


@case("predict", "error", "is a named pipe")
def onnx_named_pipe(folder: Path) -> Spec:
    os.mkfifo(folder / "model.onnx")
    return predict_with(folder / "model.onnx", folder)


# --- export -----------------------------------------------------------------------------------


def export(out: Path | str, *extra: str) -> list[str]:
    return ["-m", "fad", "export", str(Workspace.weights), "--format", "torchscript", "--out",
            str(out), *extra]  # fmt: skip


@case("export", "error", "is not a folder")
def export_out_under_a_file(folder: Path) -> Spec:
    (folder / "file").write_text("x")
    return Spec(export(folder / "file" / "m.pt"))


@case("export", "error", "is the weights file itself")
def export_over_the_weights(folder: Path) -> Spec:
    weights = folder / "model_final.pth"
    shutil.copy(Workspace.weights, weights)
    argv = ["-m", "fad", "export", str(weights), "--format", "torchscript", "--out", str(weights)]
    return Spec(argv, protect=[weights])


@case("export", "error", "each side must be in [32, 4096]")
def export_size_huge(folder: Path) -> Spec:
    return Spec(export(folder / "m.pt", "--size", "100000x100000"))


@case("export", "error", "expected HxW")
def export_size_garbage(folder: Path) -> Spec:
    return Spec(export(folder / "m.pt", "--size=-5x10"))


@case("export", "error", "is a named pipe")
def export_check_images_named_pipe(folder: Path) -> Spec:
    images = copy_images(folder, 1)
    os.mkfifo(images / "cam.jpg")
    return Spec(export(folder / "m.pt", "--check-images", str(images)))


@case("export", "error", "megapixels")
def export_check_images_pixel_bomb(folder: Path) -> Spec:
    images = copy_images(folder, 1)
    pixel_bomb(images / "huge.png")
    return Spec(export(folder / "m.pt", "--check-images", str(images)))


@case("export", "ok")
def export_removes_a_killed_exports_temporary_and_nothing_else(folder: Path) -> Spec:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = folder / f".m.pt.fad-{dead}-abcdefgh.tmp"
    stale.write_bytes(b"\0" * 16_000_000)
    kept = user_tmp_files(folder)

    def check(_: str) -> str:
        return "the stale temporary file is still there" if stale.exists() else ""

    return Spec(export(folder / "m.pt"), protect=kept, check=check)


@case("export", "error", "must end in .onnx")
def export_onnx_wrong_suffix(folder: Path) -> Spec:
    return Spec(export(folder / "m.pt")[:-2] + ["--format", "onnx", "--out", str(folder / "m.pt")])


# --- eval, API, demo, search ------------------------------------------------------------------


def evaluate(weights: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "fad", "eval", *config(out, "MODEL.WEIGHT", str(weights), *extra)]


@case("eval", "ok")
def eval_degenerate_test_image(folder: Path) -> Spec:
    images, ann, dataset = copy_set(folder, "val")
    add_image(images, ann, "thin.jpg", (3000, 2))
    argv = evaluate(Workspace.weights, folder / "out", "DATASETS.TEST", f"('{dataset}',)")
    return Spec(argv, protect=[images], check=contains("degenerate image(s)"))


@case("eval", "error", "DATASETS.TEST is empty")
def eval_no_test_set(folder: Path) -> Spec:
    return Spec(evaluate(Workspace.weights, folder / "out", "DATASETS.TEST", "()"))


@case("eval", "error", "'class_names'")
def eval_meta_wrong_types(folder: Path) -> Spec:
    weights = spoilt_weights(folder, lambda c: c["meta"].update(class_names={"a": 1}))
    return Spec(evaluate(weights, folder / "out"), protect=prior_run(folder / "out"))


@case("eval", "error", "holds non-finite values")
def eval_nan_weights(folder: Path) -> Spec:
    change = lambda c: next(iter(c["model"].values())).fill_(float("inf"))  # noqa: E731
    weights = spoilt_weights(folder, change)
    return Spec(evaluate(weights, folder / "out"))


def _api(name: str, code: str, message: str) -> None:
    def build(folder: Path) -> Spec:
        program = (
            "import sys, fad\nfrom fad.errors import FadError\ntry:\n"
            f"    {code}\nexcept FadError as exc:\n"
            "    print(f'fad api: error: {exc}', file=sys.stderr); sys.exit(2)\n"
        )
        return Spec(["-c", program.replace("WEIGHTS", repr(str(Workspace.weights)))])

    CASES.append(Case(name, "api", "error", build, message))


_api("load_device_quantum", "fad.load(WEIGHTS, device='quantum')", "expected e.g. 'cpu'")
_api("load_device_cuda_7", "fad.load(WEIGHTS, device='cuda:7')", "CUDA device(s)")
_api("load_missing_file", "fad.load('nope.pth')", "file not found")
_api("load_a_folder", "fad.load('/')", "file not found")
_api("read_genotypes_pipe", "fad.read_genotypes('/dev/stdin')", "not a regular file")


def _demo(name: str, args: list[str], message: str) -> None:
    def build(folder: Path) -> Spec:
        return Spec(["-m", "fad", "demo", "--out", str(folder / "demo"), *args])

    CASES.append(Case(name, "demo", "error", build, message))


_demo("demo_negative_seeds", ["--seeds=-1"], "SEED must be in [0, ")
_demo("demo_huge_seed", ["--seed", "99999999999"], "SEED must be in [0, ")
_demo("demo_repeated_seeds", ["--seeds", "0,0"], "a seed is repeated")
_demo("demo_bad_override", ["SOLVER.GAMMA", "-1"], "SOLVER.GAMMA must be > 0")


def search(out: Path | str, *extra: str) -> list[str]:
    names = ["DATASETS.TRAIN", f"('{Workspace.train}',)", "OUTPUT_DIR", str(out)]
    return ["-m", "fad", "search", "--config-file", str(SEARCH_CFG), *TINY, *SCRATCH_SEARCH,
            *names, "SOLVER.MAX_ITER", "1", *extra]  # fmt: skip


@case("search", "ok")
def search_keeps_user_tmp_files(folder: Path) -> Spec:
    out = folder / "out"
    return Spec(search(out), protect=user_tmp_files(out))


@case("search", "error", "not a search one")
def search_into_a_training_folder(folder: Path) -> Spec:
    out = folder / "out"
    shutil.copytree(Workspace.weights.parent, out)
    return Spec(search(out), protect=[out])
