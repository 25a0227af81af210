"""Model delivery against a real HTTP server on 127.0.0.1: resumable, sha256-verified, atomic
downloads, disk checks, one download per model, feature status, `aios models pull`, and a real
ONNX model delivered this way, loaded and run."""

from __future__ import annotations

import hashlib
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from aios import ModelError, Orchestrator
from aios.config.checks import check_config
from aios.config.loader import load_config
from aios.config.schema import DeliverySettings, ModelSource
from aios.delivery import ModelDelivery, feature_status
from aios.errors import CancelledError, DeliveryError
from aios.plugin_manager import build_plugin_manager
from aios.testing.tiny_onnx import linear_relu, linear_relu_reference

from .conftest import phone_config, run_cli


# -- the model server -----------------------------------------------------------------------
@dataclass
class Served:
    path: str
    range: str | None
    status: int = 0
    sent: int = 0


@dataclass
class ModelServer:
    """Serves ``files`` with ``Range`` support, and misbehaves on demand."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: list[int] = field(default_factory=list)  # per response: drop after N body bytes
    ignore_range: bool = False
    corrupt: bool = False  # flip one byte of every body
    delay_s: float = 0.0  # pause between 8 KiB chunks (a slow server)
    requests: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def sent(self) -> int:
        return sum(r.sent for r in self.requests)


def _handler(srv: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            served = Served(self.path, self.headers.get("Range"))
            with srv.lock:
                srv.requests.append(served)
                cut = srv.cut_after.pop(0) if srv.cut_after else None
            data = srv.files.get(self.path.lstrip("/"))
            if data is None:
                served.status = 404
                self.send_error(404)
                return
            if srv.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            if served.range and not srv.ignore_range:
                start = int(served.range.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    served.status = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                served.status = 206
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                served.status = 200
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if cut is not None:
                body = body[:cut]
            for i in range(0, len(body), 8192):
                if srv.delay_s:
                    time.sleep(srv.delay_s)
                chunk = body[i : i + 8192]
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except OSError:
                    return
                served.sent += len(chunk)
            if cut is not None:
                self.close_connection = True

    return Handler


@pytest.fixture
def server() -> Iterator[ModelServer]:
    srv = ModelServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(srv))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield srv
    finally:
        httpd.shutdown()
        httpd.server_close()


PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = DeliverySettings(retry_backoff_s=0.01, max_retries=3, min_free_disk_mb=0)


def spec_for(url: str, sha: str = SHA, size: int | None = None, file: str = "blob.bin") -> Any:
    """A device ModelSpec whose source is ``url``."""
    from aios.config.schema import ModelSpec

    return ModelSpec.model_validate(
        {
            "id": "blob",
            "capabilities": ["vision"],
            "parameters_b": 0.001,
            "quantization": "fp32",
            "format": "onnx",
            "tier": "device",
            "memory_mb": 16,
            "context_length": 128,
            "backends": ["onnxruntime"],
            "source": {"url": url, "file": file, "sha256": sha, "size_bytes": size},
        }
    )


def delivery(tmp_path: Path, settings: DeliverySettings = FAST) -> ModelDelivery:
    return ModelDelivery(settings, tmp_path / "models")


# -- downloads ------------------------------------------------------------------------------
def test_full_download_is_verified_and_installed_atomically(
    server: ModelServer, tmp_path: Path
) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.delay_s = 0.002
    d = delivery(tmp_path)
    spec = spec_for(f"{server.base}/blob.bin")
    target = d.target(spec)
    seen: list[int] = []  # sizes of the target whenever it existed during the download

    def watch() -> None:
        while not job.done.is_set():
            if target.exists():
                seen.append(target.stat().st_size)
            time.sleep(0.001)

    job = d.start(spec)
    watcher = threading.Thread(target=watch)
    watcher.start()
    path = d.pull(spec)
    watcher.join()
    assert path == target and path.read_bytes() == PAYLOAD
    assert all(s == len(PAYLOAD) for s in seen)  # never visible half-written
    assert not list(target.parent.glob("*.partial"))
    assert [(r.range, r.status) for r in server.requests] == [(None, 200)]
    assert d.progress.snapshot() == {}  # finished downloads leave the registry
    assert d.pull(spec) == path and len(server.requests) == 1  # installed: no new request


def test_interrupted_download_resumes_from_the_partial(server: ModelServer, tmp_path: Path) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.cut_after = [100_000]
    spec = spec_for(f"{server.base}/blob.bin")
    once = delivery(tmp_path, DeliverySettings(max_retries=0, min_free_disk_mb=0))
    with pytest.raises(DeliveryError, match="100000 bytes kept in blob.bin.partial"):
        once.pull(spec)
    partial = once.target(spec).with_name("blob.bin.partial")
    assert partial.stat().st_size == 100_000 and not once.target(spec).exists()
    # A later pull (a new process, say) asks only for the rest.
    path = delivery(tmp_path).pull(spec)
    assert path.read_bytes() == PAYLOAD and not partial.exists()
    assert [(r.range, r.status) for r in server.requests] == [
        (None, 200),
        ("bytes=100000-", 206),
    ]
    assert server.sent() == len(PAYLOAD)  # every byte crossed the wire once


def test_cut_connections_are_retried_with_backoff_within_one_pull(
    server: ModelServer, tmp_path: Path
) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.cut_after = [50_000, 50_000, 50_000]
    path = delivery(tmp_path).pull(spec_for(f"{server.base}/blob.bin", size=len(PAYLOAD)))
    assert path.read_bytes() == PAYLOAD
    assert [r.range for r in server.requests] == [
        None,
        "bytes=50000-",
        "bytes=100000-",
        "bytes=150000-",
    ]
    assert server.sent() == len(PAYLOAD)


def test_a_server_that_ignores_range_restarts_cleanly(server: ModelServer, tmp_path: Path) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.cut_after = [120_000]
    spec = spec_for(f"{server.base}/blob.bin")
    with pytest.raises(DeliveryError):
        delivery(tmp_path, DeliverySettings(max_retries=0, min_free_disk_mb=0)).pull(spec)
    server.ignore_range = True
    path = delivery(tmp_path).pull(spec)
    assert path.read_bytes() == PAYLOAD
    assert [(r.range, r.status) for r in server.requests] == [
        (None, 200),
        ("bytes=120000-", 200),
    ]


def test_a_complete_partial_is_verified_and_installed(server: ModelServer, tmp_path: Path) -> None:
    # A crash between the last byte and the rename: the server answers 416 to the range.
    server.files["blob.bin"] = PAYLOAD
    d = delivery(tmp_path)
    spec = spec_for(f"{server.base}/blob.bin")
    d.model_dir.mkdir(parents=True)
    (d.model_dir / "blob.bin.partial").write_bytes(PAYLOAD)
    assert d.pull(spec).read_bytes() == PAYLOAD
    assert [(r.range, r.status) for r in server.requests] == [("bytes=300000-", 416)]
    assert server.sent() == 0


def test_sha256_mismatch_is_a_typed_error_and_installs_nothing(
    server: ModelServer, tmp_path: Path
) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.corrupt = True
    d = delivery(tmp_path)
    spec = spec_for(f"{server.base}/blob.bin")
    with pytest.raises(DeliveryError, match="does not match its sha256") as info:
        d.pull(spec)
    assert info.value.code == "delivery_error" and SHA in str(info.value)
    assert list((tmp_path / "models").iterdir()) == []  # neither the file nor a partial
    assert d.progress.get("blob")["state"] == "failed"  # type: ignore[index]


@pytest.mark.parametrize("known_size", [True, False])
def test_not_enough_disk_is_refused_before_any_byte(
    server: ModelServer, tmp_path: Path, known_size: bool
) -> None:
    server.files["blob.bin"] = PAYLOAD
    d = delivery(tmp_path, DeliverySettings(min_free_disk_mb=1 << 30))
    spec = spec_for(f"{server.base}/blob.bin", size=len(PAYLOAD) if known_size else None)
    with pytest.raises(DeliveryError, match=r"not enough disk space .* 1073741824 MiB must stay"):
        d.pull(spec)
    # With the size in the config nothing is asked of the server; without it, the headers are
    # read (Content-Length) and the body never written.
    assert len(server.requests) == (0 if known_size else 1)
    assert list((tmp_path / "models").iterdir()) == []


def test_concurrent_pulls_share_one_download(server: ModelServer, tmp_path: Path) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.delay_s = 0.005
    d = delivery(tmp_path)
    spec = spec_for(f"{server.base}/blob.bin")
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(d.pull(spec))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert len(server.requests) == 1 and results[0].read_bytes() == PAYLOAD


def test_a_download_can_be_cancelled_and_resumed(server: ModelServer, tmp_path: Path) -> None:
    server.files["blob.bin"] = PAYLOAD
    server.delay_s = 0.01
    d = delivery(tmp_path)
    spec = spec_for(f"{server.base}/blob.bin")
    job = d.start(spec)
    while (d.progress.get("blob") or {}).get("bytes_done", 0) < 30_000:
        time.sleep(0.01)
    assert d.cancel("blob")
    assert job.done.wait(5) and isinstance(job.error, CancelledError)
    assert d.progress.get("blob") is None and not d.downloading("blob")
    kept = d.partial_bytes(spec)
    assert 30_000 <= kept < len(PAYLOAD)
    server.delay_s = 0
    assert d.pull(spec).read_bytes() == PAYLOAD
    assert server.requests[-1].range == f"bytes={kept}-"


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source, message",
    [
        ({"url": "http://x/m.onnx", "file": "m.onnx"}, "`url` needs `file`"),
        ({"url": "http://x/m.onnx", "sha256": SHA}, "`url` needs `file`"),
        ({"url": "ftp://x/m.onnx", "file": "m.onnx", "sha256": SHA}, "http or https"),
        ({"url": "m.onnx", "file": "a/m.onnx", "sha256": SHA}, "plain file name"),
        ({"url": "http://x/m", "path": "m.onnx", "file": "m", "sha256": SHA}, "exactly one"),
        ({"path": "m.onnx", "size_bytes": 3}, "`size_bytes` goes with `url`"),
    ],
)
def test_url_sources_are_validated(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelSource.model_validate(source)


def test_delivery_settings_are_strict_and_bounded() -> None:
    with pytest.raises(ValidationError):
        DeliverySettings.model_validate({"max_retries": -1})
    with pytest.raises(ValidationError):
        DeliverySettings.model_validate({"base_url": "ftp://x"})
    with pytest.raises(ValidationError):
        DeliverySettings.model_validate({"unknown": 1})


# -- through the orchestrator, the feature status and the CLI -----------------------------
CONFIG = (
    phone_config('["onnxruntime"]', soc_vendor="qualcomm")
    + """
[[models]]
id = "tiny"
capabilities = ["vision"]
parameters_b = 0.001
quantization = "fp32"
format = "onnx"
tier = "device"
memory_mb = 16
context_length = 128
backends = ["onnxruntime"]
source = {{ url = "{url}", file = "tiny.onnx", sha256 = "{sha}", size_bytes = {size} }}
[[models]]
id = "huge"
capabilities = ["vision"]
parameters_b = 0.001
quantization = "fp32"
format = "onnx"
tier = "device"
memory_mb = 9000
context_length = 128
backends = ["onnxruntime"]
source = {{ url = "huge.onnx", file = "huge.onnx", sha256 = "{sha}" }}
[storage]
model_dir = "{model_dir}"
[delivery]
base_url = "{base}/models/"
retry_backoff_s = 0.01
min_free_disk_mb = 0
auto_download = {auto}
[plugins]
autoload = false
"""
)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return linear_relu(tmp_path_factory.mktemp("onnx") / "tiny.onnx").read_bytes()


def write_config(
    tmp_path: Path, server: ModelServer, data: bytes, *, auto: bool = False, url: str = ""
) -> Path:
    server.files["models/tiny.onnx"] = data
    cfg = tmp_path / "oem.toml"
    text = CONFIG.format(
        url=url or "tiny.onnx",  # relative: resolved against delivery.base_url
        sha=hashlib.sha256(data).hexdigest(),
        size=len(data),
        model_dir=tmp_path / "models",
        base=server.base,
        auto=str(auto).lower(),
    )
    cfg.write_text(textwrap.dedent(text), encoding="utf-8")
    return cfg


def test_feature_status_goes_downloadable_downloading_available(
    server: ModelServer, tmp_path: Path, tiny_onnx: bytes
) -> None:
    data = tiny_onnx + b"\0" * (200_000 - len(tiny_onnx))  # big enough to watch it move
    orch = Orchestrator.from_file(write_config(tmp_path, server, data), ledger=False)
    try:
        before = feature_status(orch)
        tiny = before["models"]["tiny"]
        assert tiny["state"] == "downloadable" and tiny["bytes_total"] == len(data)
        assert tiny["url"] == f"{server.base}/models/tiny.onnx"
        assert "aios models pull tiny" in tiny["reason"]
        assert before["models"]["huge"]["state"] == "unavailable"
        assert "model budget of 4096 MB" in before["models"]["huge"]["reason"]
        assert before["skills"]["image"] == {
            "state": "downloadable",
            "model": "tiny",
            "reason": tiny["reason"],
        }
        assert before["skills"]["summarize"]["state"] == "available"  # its fallback answers
        with pytest.raises(ModelError, match=r"is downloadable \(0.2 MB\) .*aios models pull tiny"):
            orch.load_model("tiny")

        server.delay_s = 0.03
        job = orch.delivery.start(orch.config.model("tiny"))
        deadline = time.monotonic() + 10
        during: dict[str, Any] = {}
        while time.monotonic() < deadline:
            during = feature_status(orch)
            p = during["models"]["tiny"].get("progress")
            if p and 0 < p["bytes_done"] < len(data):
                break
            time.sleep(0.02)
        tiny = during["models"]["tiny"]
        assert tiny["state"] == "downloading" and tiny["progress"]["bytes_total"] == len(data)
        assert 0 < tiny["progress"]["percent"] < 100 and tiny["progress"]["rate_bps"] > 0
        assert during["skills"]["image"]["state"] == "downloading"
        assert job.done.wait(15) and job.error is None
        after = feature_status(orch)
        assert after["models"]["tiny"] == {
            "tier": "device",
            "backend": "onnxruntime",
            "state": "available",
        }
        assert after["skills"]["image"] == {"state": "available", "model": "tiny", "tier": "device"}
    finally:
        orch.close()


def test_a_delivered_model_loads_and_runs(
    server: ModelServer, tmp_path: Path, tiny_onnx: bytes
) -> None:
    # auto_download: the first load downloads it (the call waits), then it runs for real.
    orch = Orchestrator.from_file(
        write_config(tmp_path, server, tiny_onnx, auto=True), ledger=False
    )
    try:
        loaded = orch.load_model("tiny")
        x = np.array([[1.5, -2.0]], dtype=np.float32)
        y = loaded.handle.run({"x": x})["y"]
        np.testing.assert_allclose(y, linear_relu_reference(x), rtol=1e-6)
        assert (tmp_path / "models" / "tiny.onnx").read_bytes() == tiny_onnx
        assert len(server.requests) == 1
    finally:
        orch.close()


def test_a_cancelled_request_stops_waiting_but_the_download_goes_on(
    server: ModelServer, tmp_path: Path, tiny_onnx: bytes
) -> None:
    data = tiny_onnx + b"\0" * (400_000 - len(tiny_onnx))  # ~2.5 s at the slowed rate
    server.delay_s = 0.05
    orch = Orchestrator.from_file(write_config(tmp_path, server, data, auto=True), ledger=False)
    try:
        spec, backend = orch.config.model("tiny"), orch.backend("onnxruntime")
        assert backend is not None
        cancels = {"downloading": threading.Event(), "queued": threading.Event()}
        errors: dict[str, BaseException] = {}
        took: dict[str, float] = {}

        def request(name: str) -> None:
            try:
                orch.models.get(spec, backend, cancels[name])
            except BaseException as exc:  # noqa: BLE001 - recorded for the asserts
                errors[name] = exc
            took[name] = time.monotonic()

        first = threading.Thread(target=request, args=("downloading",))
        first.start()
        deadline = time.monotonic() + 10
        while not (orch.delivery.progress.get("tiny") or {}).get("bytes_done"):
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.02)
        second = threading.Thread(target=request, args=("queued",))  # waits on the first
        second.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        for ev in cancels.values():
            ev.set()
        first.join(5)
        second.join(5)
        assert isinstance(errors.get("downloading"), CancelledError), errors
        assert "the download goes on" in str(errors["downloading"])
        assert isinstance(errors.get("queued"), CancelledError), errors
        assert max(took.values()) - t0 < 1.0, "both stop waiting at once"
        job = orch.delivery.start(spec)  # joins the download still running
        assert job.done.wait(30) and job.error is None
        assert (tmp_path / "models" / "tiny.onnx").read_bytes() == data
        assert len(server.requests) == 1, "one download, neither restarted nor cancelled"
    finally:
        orch.close()


def test_models_pull_and_status_through_the_cli(
    server: ModelServer, tmp_path: Path, tiny_onnx: bytes
) -> None:
    cfg = str(write_config(tmp_path, server, tiny_onnx, url=f"{server.base}/models/tiny.onnx"))
    status = run_cli("models", "status", "--config", cfg, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["models"]["tiny"]["state"] == "downloadable"

    pulled = run_cli("models", "pull", "tiny", "--config", cfg)
    assert pulled.returncode == 0, pulled.stderr
    assert "tiny: downloaded 0.0 MB, sha256 verified" in pulled.stdout
    assert "downloaded" in pulled.stderr and "MB" in pulled.stderr  # the progress line
    assert (tmp_path / "models" / "tiny.onnx").read_bytes() == tiny_onnx

    again = run_cli("models", "pull", "tiny", "--config", cfg, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["pulled"][0]["already_downloaded"] and report["errors"] == []
    assert len(server.requests) == 1

    table = run_cli("models", "status", "--config", cfg)
    assert table.returncode == 0 and "tiny" in table.stdout and "available" in table.stdout
    assert run_cli("models", "ls", "--config", cfg).returncode == 0

    bad = run_cli("models", "pull", "huge", "--config", cfg, "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["errors"][0]["code"] == "delivery_error"  # 404 from server
    unknown = run_cli("models", "pull", "nope", "--config", cfg)
    assert unknown.returncode == 1 and "not in the model matrix" in unknown.stderr


def test_check_config_accepts_undownloaded_models_and_needs_a_base_url(
    server: ModelServer, tmp_path: Path, tiny_onnx: bytes
) -> None:
    path = write_config(tmp_path, server, tiny_onnx)
    cfg, _ = load_config(path)
    ps = build_plugin_manager(autoload=False)
    args: dict[str, Any] = {"backends": ps.backends, "skills": ps.skills, "base_dir": tmp_path}
    assert check_config(cfg, **args) == []  # not downloaded yet is fine
    no_base = cfg.model_copy(update={"delivery": DeliverySettings()})
    assert check_config(no_base, **args) == [
        "models[0].source.url: relative url 'tiny.onnx' needs `delivery.base_url` "
        "(the OEM model server)",
        "models[1].source.url: relative url 'huge.onnx' needs `delivery.base_url` "
        "(the OEM model server)",
    ]
