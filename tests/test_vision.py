"""The image model (EfficientNet-Lite0, built FP32 and INT8), labels, preprocessing, the `image`
skill end to end through the CLI, and the same model on the QNN NPU backend (HTP simulator).

Real models throughout: the session fixture ``vision_models`` builds both ONNX files once.
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from aios import GenerationError, ModelError, Orchestrator
from aios.backends.default_onnxruntime import OnnxRuntimeBackend, package_version
from aios.config.loader import load_config
from aios.vision import INPUT_NAME, OUTPUT_NAME, labels, preprocess
from aios.vision.tagging import make_tagger, top_k

from .conftest import phone_config, run_cli

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
ROCKET = {657, 744, 812}  # missile, projectile, space shuttle
FP32 = "efficientnet-lite0.onnx"
INT8 = "efficientnet-lite0-int8.onnx"

CONFIG = (
    phone_config("{backends}", soc_vendor="qualcomm")
    + """
[[models]]
id = "efficientnet-lite0"
family = "efficientnet-lite"
capabilities = ["vision"]
parameters_b = 0.0047
quantization = "fp32"
format = "onnx"
tier = "device"
memory_mb = 260
context_length = 128
backends = {backends}
source = {{ builder = "efficientnet-lite0", file = "efficientnet-lite0.onnx" }}
# A cloud model that claims vision: photos must never reach it, whatever the routing mode.
[[models]]
id = "cloud-vision"
capabilities = ["vision", "text-generation"]
parameters_b = 72
quantization = "fp16"
format = "api"
tier = "cloud"
endpoint = "cloud"
memory_mb = 0
context_length = 32768
prompt_format = "chat"
[[cloud.endpoints]]
name = "cloud"
base_url = "http://127.0.0.1:9/v1"
max_retries = 0
[prompt_formats.chat]
style = "chat"
template = "{{input}}"
[routing]
mode = "prefer_cloud"
[storage]
model_dir = "{model_dir}"
[backend_options.qnn]
cache_dir = "{qnn_cache}"
[plugins]
autoload = false
"""
)


def write_config(tmp_path: Path, model_dir: Path, backends: str = '["onnxruntime"]') -> Path:
    cfg = tmp_path / "oem.toml"
    text = CONFIG.format(backends=backends, model_dir=model_dir, qnn_cache=tmp_path / "qnn")
    cfg.write_text(textwrap.dedent(text), encoding="utf-8")
    return cfg


def photo(name: str) -> Image.Image:
    data = pytest.importorskip("skimage.data", reason="scikit-image (the [build] extra)")

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def cpu_model(path: Path) -> Any:
    cfg, _ = load_config(write_config(path.parent, path.parent))
    return OnnxRuntimeBackend().load(cfg.models[0], path)


def top(model: Any, images: list[Image.Image]) -> np.ndarray:
    logits = model.run({INPUT_NAME: preprocess.batch(images)})[OUTPUT_NAME]
    return np.argsort(-logits, axis=1)


# -- labels and preprocessing (no model) ----------------------------------------------------
def test_labels_cover_imagenet_in_english_and_chinese() -> None:
    en, zh = labels.english(), labels.chinese()
    assert len(en) == len(zh) == 1000
    assert all(n.strip() for n in en) and all(n.strip() for n in zh)
    assert len(set(en)) == 1000 and len(set(zh)) >= 995
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in zh if n not in ("iPod",))
    assert labels.label(281) == ("tabby cat", "虎斑猫")
    assert labels.label(285) == ("Egyptian Mau", "埃及猫")
    assert labels.label(967) == ("espresso", "浓缩咖啡")
    assert labels.label(657) == ("missile", "导弹")
    assert labels.label(744)[0] == "projectile"


def test_preprocess_handles_modes_and_exif_orientation(tmp_path: Path) -> None:
    base = np.zeros((40, 60, 3), dtype=np.uint8)
    base[:, :30] = (255, 0, 0)  # left half red
    img = Image.fromarray(base)
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): stored 60x40, shown 40x60.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    read = preprocess.read_image(path)
    assert read.size == (40, 60) and read.info["original_size"] == (40, 60)
    arr = preprocess.to_array(read)
    assert arr.shape == (3, 224, 224) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0
    # Rotated clockwise, the red half is now on top.
    assert arr[0, :80].mean() > 0.9 and arr[0, -80:].mean() < 0.1

    rgba = Image.new("RGBA", (30, 30), (0, 0, 0, 0))  # fully transparent: over white
    assert preprocess.to_array(rgba).min() > 0.99
    sixteen = Image.fromarray(np.full((30, 30), 65535, dtype=np.uint16))
    assert preprocess.to_array(sixteen).min() > 0.99
    for mode in ("L", "P", "CMYK", "1", "LA"):
        assert preprocess.to_array(img.convert(mode)).shape == (3, 224, 224)
    assert preprocess.batch([img, rgba]).shape == (2, 3, 224, 224)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_text("hello, not a photo"), "not an image"),
        (lambda p: p.write_bytes(_jpeg()[: len(_jpeg()) // 2]), "image file is truncated"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "file not found"),
    ],
    ids=["text", "truncated", "directory", "missing"],
)
def test_unreadable_photos_say_why(tmp_path: Path, make: Any, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(ValueError, match=reason):
        preprocess.read_image(path)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    photo("chelsea").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# -- the real model -------------------------------------------------------------------------
@pytest.mark.model
def test_fp32_and_int8_label_the_sample_photos(vision_models: Path) -> None:
    images = [photo("chelsea"), photo("coffee"), photo("rocket")]
    fp32 = top(cpu_model(vision_models / FP32), images)
    int8 = top(cpu_model(vision_models / INT8), images)
    for ranked in (fp32, int8):
        assert ranked[0, 0] in CATS
        assert COFFEE & set(ranked[1, :3])
        assert ROCKET & set(ranked[2, :3])
    assert list(int8[:, 0]) == list(fp32[:, 0])
    tags = top_k(
        cpu_model(vision_models / FP32).run({INPUT_NAME: preprocess.batch(images[1:2])})[
            OUTPUT_NAME
        ][0],
        k=3,
    )
    assert tags[0]["label"] == "espresso" and tags[0]["label_zh"] == "浓缩咖啡"
    assert tags[0]["score"] > 0.5 and [t["score"] for t in tags] == sorted(
        (t["score"] for t in tags), reverse=True
    )


@pytest.mark.model
def test_tagger_batches_and_falls_back_to_one_photo_per_call(vision_models: Path) -> None:
    import onnxruntime as ort

    images = [photo("chelsea"), photo("coffee"), photo("rocket")]
    dynamic = cpu_model(vision_models / FP32)
    batched = make_tagger(dynamic.run, k=3, min_score=0.05, batch=16)(images)
    # A session whose batch is fixed at 1, as the QNN backend fixes it: a batch of 3 fails,
    # the tagger goes on one photo per call and gets the same tags.
    so = ort.SessionOptions()
    so.add_free_dimension_override_by_name("batch", 1)
    fixed = ort.InferenceSession(str(vision_models / FP32), so, providers=["CPUExecutionProvider"])

    calls: list[int] = []

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(len(inputs[INPUT_NAME]))
        try:
            return {OUTPUT_NAME: fixed.run([OUTPUT_NAME], inputs)[0]}
        except Exception as exc:  # what OnnxModel.run raises for a shape the model refuses
            raise GenerationError(str(exc)) from exc

    single = make_tagger(run, k=3, min_score=0.05, batch=16)(images)
    assert calls == [3, 1, 1, 1]
    assert [[t["index"] for t in tags] for tags in single] == [
        [t["index"] for t in tags] for tags in batched
    ]
    assert all(t["score"] >= 0.05 for tags in batched for t in tags)
    assert set(batched[0][0]) == {"label", "label_zh", "score", "index"}


@pytest.mark.model
def test_aios_run_image_end_to_end_stays_on_device(tmp_path: Path, vision_models: Path) -> None:
    cfg = write_config(tmp_path, vision_models)
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(_jpeg())
    proc = run_cli(
        "run",
        "image",
        "--file",
        str(cat),
        "--json",
        "--config",
        str(cfg),
        "--mode",
        "prefer_cloud",
        "--top-k",
        "3",
        env={"AIOS_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    out, record = body["output"], body["record"]
    assert out["file"] == str(cat) and (out["width"], out["height"]) == (451, 300)
    assert out["model"] == "efficientnet-lite0" and len(out["labels"]) == 3
    assert out["labels"][0]["index"] in CATS and out["labels"][0]["label_zh"]
    assert record["tier"] == "device" and record["model"] == "efficientnet-lite0"
    assert record["backend"] == "onnxruntime" and record["cost_cny"] == 0
    assert any("privacy" in r["reason"] for r in record["reasons"] if r["stage"] == "tier")


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"just some text, saved as .jpg\n", "not an image"),
        (None, "image file is truncated"),
    ],
    ids=["text", "truncated"],
)
def test_a_bad_photo_is_a_clean_typed_error(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content if content is not None else _jpeg()[:4000])
    # The photo is read before the model loads: no model file is needed to refuse it.
    cfg = write_config(tmp_path, tmp_path / "no-models")
    proc = run_cli("run", "image", "--file", str(bad), "--json", "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "invalid_input"
    assert f"file '{bad}'" in error["message"] and problem in error["message"]
    assert "Traceback" not in proc.stderr


def test_a_model_not_built_yet_says_how_to_build_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, tmp_path / "empty-models")
    config, path = load_config(cfg)
    orch = Orchestrator(config, config_path=path, strict=True, ledger=False)
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(_jpeg())
    try:
        with pytest.raises(ModelError) as err:
            orch.invoke("image", {"file": str(cat)})
    finally:
        orch.close()
    assert str(err.value).startswith(
        "model 'efficientnet-lite0' is not built yet: run `aios models build efficientnet-lite0`"
        " (needs pip install 'aios[build]'"
    )


# -- the QNN NPU backend --------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.model
def test_the_same_model_on_the_qnn_htp_gives_the_same_top_class(
    tmp_path: Path, vision_models: Path
) -> None:
    if package_version("onnxruntime-qnn") is None:
        pytest.skip("onnxruntime-qnn is not installed (pip install -e '.[qnn]' on x86_64 Linux)")
    from aios.backends.default_qnn import EP_NAME, QnnBackend

    probe = QnnBackend().probe()
    if not probe.available:
        pytest.skip(f"qnn backend unavailable: {probe.reason}")
    cfg = write_config(tmp_path, vision_models, backends='["qnn"]')
    config, path = load_config(cfg)
    orch = Orchestrator(config, config_path=path, strict=True, ledger=False)
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(_jpeg())
    try:
        result = orch.invoke("image", {"file": str(cat), "top_k": 1})
        loaded = orch.load_model("efficientnet-lite0").handle
        assert list(loaded.node_assignment) == [EP_NAME]  # every node on the NPU
    finally:
        orch.close()
    assert result.record.backend == "qnn" and result.record.tier == "device"
    cpu = top(cpu_model(vision_models / FP32), [preprocess.read_image(cat)])
    assert result.output.labels[0].index == cpu[0, 0]
