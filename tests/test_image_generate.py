"""`image-generate`: the cloud images endpoint when the OEM configured one, a clear error if not.

The endpoint is a real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread) speaking
the OpenAI images API: POST /v1/images/generations answers a real PNG as ``b64_json``.
"""

from __future__ import annotations

import base64
import io
import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aios import NoModelAvailableError, Orchestrator
from aios.config.loader import load_config

from .conftest import phone_config, run_cli

BASE = (
    phone_config('["onnxruntime"]')
    + """
[[models]]
id = "efficientnet-lite0"
capabilities = ["vision"]
parameters_b = 0.0047
quantization = "fp32"
format = "onnx"
tier = "device"
memory_mb = 260
context_length = 128
backends = ["onnxruntime"]
source = { builder = "efficientnet-lite0", file = "efficientnet-lite0.onnx" }
[plugins]
autoload = false
"""
)
CLOUD = """
[[models]]
id = "cloud-images"
capabilities = ["image-generation"]
parameters_b = 12
quantization = "fp16"
format = "api"
tier = "cloud"
endpoint = "images"
remote_model = "image-model-1"
memory_mb = 0
context_length = 128
[[cloud.endpoints]]
name = "images"
base_url = "{base_url}"
api_key_env = "AIOS_TEST_IMAGES_KEY"
max_retries = 0
cost_per_call_cny = 0.2
[routing]
mode = "{mode}"
daily_cloud_budget_cny = 5
"""


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


class ImagesHandler(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).received.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path != "/v1/images/generations":
            self.send_error(404)
            return
        data = json.dumps(
            {
                "created": 1,
                "data": [
                    {"b64_json": base64.b64encode(tiny_png()).decode()}
                    for _ in range(body.get("n", 1))
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def images_server() -> Iterator[str]:
    ImagesHandler.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImagesHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def orchestrator(tmp_path: Path, text: str) -> Orchestrator:
    path = tmp_path / "oem.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    cfg, resolved = load_config(path)
    return Orchestrator(cfg, config_path=resolved, strict=True, ledger=False)


def test_image_generation_goes_to_the_configured_images_endpoint(
    tmp_path: Path, images_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOS_TEST_IMAGES_KEY", "sk-test")
    orch = orchestrator(tmp_path, BASE + CLOUD.format(base_url=images_server, mode="prefer_local"))
    try:
        result = orch.invoke("image-generate", {"prompt": "a red square", "size": "256x256"})
    finally:
        orch.close()
    [request] = ImagesHandler.received
    assert request["path"] == "/v1/images/generations"
    assert request["body"] == {
        "model": "image-model-1",
        "prompt": "a red square",
        "n": 1,
        "size": "256x256",
        "response_format": "b64_json",
    }
    assert request["auth"] == "Bearer sk-test"
    out = result.output
    assert out.model == "cloud-images" and out.endpoint == "images"
    [image] = out.images
    assert image.url is None and base64.b64decode(image.b64_png) == tiny_png()
    with Image.open(io.BytesIO(base64.b64decode(image.b64_png))) as img:
        assert img.format == "PNG" and img.size == (4, 4)
    record = result.record
    assert record.tier.value == "cloud" and record.backend == "openai"
    assert record.model_calls == 1 and record.cost_cny == pytest.approx(0.2)


def test_without_an_images_endpoint_it_is_not_available_on_this_device(tmp_path: Path) -> None:
    orch = orchestrator(tmp_path, BASE)
    try:
        with pytest.raises(NoModelAvailableError) as err:
            orch.invoke("image-generate", {"prompt": "a red square"})
    finally:
        orch.close()
    assert str(err.value) == (
        "image generation is not available on this device: no on-device image-generation "
        "model, and the OEM config names no cloud images endpoint"
    )
    cfg = tmp_path / "oem.toml"  # the same through the CLI: typed, no traceback
    proc = run_cli("run", "image-generate", "--text", "a red square", "--config", str(cfg))
    assert proc.returncode == 1
    assert "image generation is not available on this device" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_local_only_mode_says_the_cloud_is_ruled_out(tmp_path: Path, images_server: str) -> None:
    orch = orchestrator(tmp_path, BASE + CLOUD.format(base_url=images_server, mode="local_only"))
    try:
        with pytest.raises(NoModelAvailableError, match="not available right now") as err:
            orch.invoke("image-generate", {"prompt": "a red square"})
    finally:
        orch.close()
    assert "user choice: local only" in str(err.value)
    assert "cloud-images: cloud tier excluded by policy" in str(err.value)
    assert ImagesHandler.received == []
