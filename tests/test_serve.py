"""`segtool serve` over real HTTP on a loopback port: the API's replies, its refusals (4xx with a
one-line JSON reason, 503 when busy, never a traceback), the page and its assets, and the command."""

import base64
import http.client
import io
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="segtool serve needs the 'serve' extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="segtool serve needs the 'serve' extra: pip install -e '.[serve]'")

from segtool.pipeline.segmenters import Segmenter, SegmentResult  # noqa: E402
from segtool.serve.app import create_app  # noqa: E402
from segtool.serve.server import listen, make_server, url_of  # noqa: E402
from segtool.serve.service import SegmentService, make_service  # noqa: E402

from conftest import ROOT, run_cli, subprocess_env, tiny_model  # noqa: E402,F401 (fixture)
from test_bad_inputs import bomb_png  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Helpers: a server in a thread, requests with http.client, images as PNG bytes.

@contextmanager
def running(service, **options):
    """The app on a free loopback port, served from a thread; yields its base URL."""
    sock = listen("127.0.0.1", 0)
    server = make_server(create_app(service, **options), access_log=False)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class Reply:
    def __init__(self, response: http.client.HTTPResponse):
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()

    def json(self):
        return json.loads(self.body)

    def image(self) -> np.ndarray:
        assert self.status == 200 and self.headers["content-type"] == "image/png", (self.status, self.body[:300])
        return np.asarray(Image.open(io.BytesIO(self.body)))


def request(url: str, method: str = "GET", path: str = "/", body=None, headers=None, chunked: bool = False) -> Reply:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        return Reply(connection.getresponse())
    finally:
        connection.close()


def post(url: str, data: bytes, query: str = "", **kwargs) -> Reply:
    return request(url, "POST", f"/segment{query}", data, **kwargs)


def post_file(url: str, data: bytes, query: str = "", field: str = "file", filename: str = "photo.png") -> Reply:
    boundary = "segtool-test-boundary-7d1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return post(url, body, query, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def picture(height: int = 96, width: int = 128) -> np.ndarray:
    """A bright square on a dark, noisy background: foreground everyone agrees on."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 50, (height, width, 3), dtype=np.uint8)
    image[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = (230, 190, 40)
    return image


def square(height: int = 96, width: int = 128) -> np.ndarray:
    truth = np.zeros((height, width), bool)
    truth[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = True
    return truth


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


SMALL_PNG = png(picture(32, 32))


def assert_refused(reply: Reply, status: int, *words: str) -> str:
    """A refusal: the status, a JSON body with a one-line reason, no traceback."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["content-type"].startswith("application/json")
    reason = reply.json()["error"]
    assert reason and "\n" not in reason and "Traceback" not in reason
    for word in words:
        assert word in reason, reason
    return reason


# ---------------------------------------------------------------------------------------------
# The API with a real method: colour-pipeline (the pipeline without a model: quick, deterministic).

@pytest.fixture(scope="module")
def colour_service():
    service = make_service("colour-pipeline", max_pixels=1_000_000)
    service.start()
    return service


@pytest.fixture(scope="module")
def server(colour_service):
    with running(colour_service, max_upload_bytes=200_000) as url:
        yield url


def test_health_names_the_method_and_device(server):
    reply = request(server, path="/health")
    assert reply.status == 200
    health = reply.json()
    assert (health["status"], health["method"], health["model"], health["device"]) == \
           ("ok", "colour-pipeline", None, "cpu")
    assert (health["workers"], health["running"], health["waiting"]) == (1, 0, 0)


def test_multipart_and_raw_body_give_the_same_mask_at_the_image_size(server):
    image = picture()
    raw = post(server, png(image)).image()
    multipart = post_file(server, png(image), "?output=mask").image()
    assert raw.shape == multipart.shape == image.shape[:2]
    assert set(np.unique(raw)) <= {0, 255}
    assert np.array_equal(raw, multipart)
    found, truth = raw == 255, square()
    assert (found & truth).sum() / (found | truth).sum() > 0.8  # the square, not its inverse


def test_cutout_is_the_image_with_a_transparent_background(server):
    image = picture()
    mask = post(server, png(image)).image() == 255
    cutout = post(server, png(image), "?output=cutout").image()
    assert cutout.shape == (*image.shape[:2], 4)
    assert np.array_equal(cutout[..., 3] == 255, mask) and set(np.unique(cutout[..., 3])) <= {0, 255}
    assert np.array_equal(cutout[mask][:, :3], image[mask])


def test_overlay_marks_the_foreground_and_leaves_the_background(server):
    image = picture()
    mask = post(server, png(image)).image() == 255
    overlay = post(server, png(image), "?output=overlay").image()
    assert overlay.shape == image.shape
    changed = np.any(overlay != image, axis=-1)
    assert changed[mask].mean() > 0.9
    from scipy.ndimage import binary_dilation

    far = ~binary_dilation(mask, iterations=3)  # beyond the outline
    assert not changed[far].any()


def test_json_reports_the_result_and_embeds_the_pngs_asked_for(server):
    image = picture()
    reply = post_file(server, png(image), "?output=json&images=mask,cutout")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    result = reply.json()
    assert (result["width"], result["height"]) == (128, 96)
    assert result["k"] == [6, 8, 12] and result["rule"] == "scored" and result["seconds"] > 0
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["images"]["mask"]))))
    assert np.array_equal(mask, post(server, png(image)).image())
    assert result["foreground_fraction"] == pytest.approx((mask == 255).mean(), abs=1e-4)
    assert set(result["images"]) == {"mask", "cutout"}
    assert post(server, png(image), "?output=json").json()["images"] == {}


def test_k_and_rule_configure_the_request(server):
    result = post(server, png(picture()), "?output=json&k=2&rule=simple").json()
    assert (result["k"], result["rule"]) == ([2], "simple")


@pytest.mark.parametrize("query, words", [
    ("?k=1", ["k must be in [2, 100000]", "got 1"]),       # the limits of segtool.settings, as `segment --k` uses
    ("?k=abc", ["k='abc'", "whole number"]),
    ("?k=5000", ["k is too large", "choose a smaller k"]),  # more clusters than grid cells
    ("?rule=majority", ["rule 'majority'", "simple, geodesic, scored"]),
    ("?output=gif", ["output='gif'"]),
    ("?images=mask", ["output=json"]),
    ("?output=json&images=depth", ["images='depth'"]),
    ("?kk=3", ["unknown query parameter", "'kk'"]),
])
def test_bad_settings_are_a_400_with_the_reason(server, query, words):
    assert_refused(post(server, png(picture()), query), 400, *words)


def _bad_uploads():
    good = png(picture())
    return {"empty": (b"", "empty"), "text": (b"hello, not an image\n" * 10, "not an image"),
            "truncated": (good[: len(good) // 2], "truncated or corrupt"),
            "too small": (png(np.zeros((4, 4, 3), np.uint8)), "too small"),
            "bomb": (bomb_png(), "above the limit of 1,000,000")}


@pytest.mark.parametrize("kind", list(_bad_uploads()))
def test_bad_uploads_are_a_400_with_the_reason(server, kind):
    data, words = _bad_uploads()[kind]
    assert_refused(post(server, data), 400, words)
    if data:
        assert_refused(post_file(server, data), 400, words)


def test_a_form_without_a_file_field_is_a_400(server):
    assert_refused(post_file(server, png(picture()), field="image"), 400, "field named 'file'")


def test_uploads_over_the_cap_are_a_413_declared_or_not(server):
    big = bytes(250_000)  # the fixture's cap is 200,000 bytes
    assert_refused(post(server, big), 413, "limit of 0.2 MB")                     # Content-Length
    assert_refused(post(server, iter([big[:100_000]] * 3), chunked=True), 413)   # no length: bytes counted
    assert_refused(post_file(server, big), 413)
    assert request(server, path="/health").status == 200  # and the server goes on


def test_wrong_method_and_unknown_path_are_json(server):
    assert_refused(request(server, path="/segment"), 405)
    assert_refused(request(server, path="/nowhere"), 404)


def test_the_page_and_every_asset_it_uses(server):
    page = request(server, path="/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.body.decode()
    assert 'id="drop"' in html and 'type="file"' in html
    import re

    assets = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert sorted(assets) == ["static/app.js", "static/style.css"]
    for name, kind in (("static/app.js", "text/javascript"), ("static/style.css", "text/css")):
        reply = request(server, path="/" + name)
        assert reply.status == 200 and reply.headers["content-type"].startswith(kind) and reply.body
    script = request(server, path="/static/app.js").body.decode()
    assert "segment?output=json&images=" in script and "health" in script  # the URLs the page calls
    assert not re.search(r"https?://", script + html)  # nothing from outside the machine
    assert_refused(request(server, path="/static/../segtool/serve/app.py"), 404)
    assert_refused(request(server, path="/static/service.py"), 404)


# ---------------------------------------------------------------------------------------------
# The SC-VAE method, its model loaded once.

def test_scvae_loads_the_model_once_and_shares_it(tiny_model):
    service = make_service("scvae", model=tiny_model, device="cpu")
    assert service.default.extractor._extractor is None
    service.start()
    assert service.default.extractor._extractor is not None  # loaded at start-up, not by a request
    assert service.health() == {"status": "ok", "method": "scvae", "model": tiny_model, "device": "cpu"}
    with running(service) as url:
        mask = post(url, png(picture()), "?k=3").image()
        assert mask.shape == (96, 128)
        assert request(url, path="/health").json()["model"] == tiny_model
    configured = service.segmenter_for({"k": 3})
    assert configured is not service.default and configured.cfg.ks == (3,)
    assert configured.extractor.get() is service.default.extractor.get()


# ---------------------------------------------------------------------------------------------
# Capacity: a deliberately slow segmenter holds the one worker.

class GatedSegmenter(Segmenter):
    """Segments nothing until `gate` is set; counts the calls."""

    def __init__(self):
        self.gate = threading.Event()
        self.calls = 0

    def segment(self, image):
        self.calls += 1
        assert self.gate.wait(30)
        return SegmentResult(np.ones(image.shape[:2], bool))


class Background:
    """A request in a thread; `.reply` once it is answered."""

    def __init__(self, *args, **kwargs):
        self.reply = None
        self.thread = threading.Thread(target=self._run, args=args, kwargs=kwargs, daemon=True)
        self.thread.start()

    def _run(self, *args, **kwargs):
        self.reply = post(*args, **kwargs)

    def result(self) -> Reply:
        self.thread.join(30)
        return self.reply


def wait_for(url: str, **state) -> None:
    deadline = time.monotonic() + 30
    while True:
        health = request(url, path="/health").json()
        if all(health[k] == v for k, v in state.items()):
            return
        assert time.monotonic() < deadline, health
        time.sleep(0.02)


@contextmanager
def one_worker_held(queue: int, wait: float):
    """A server whose one worker is held by a first request until `slow.gate` is set: (url, slow, first)."""
    slow = GatedSegmenter()
    with running(SegmentService(lambda overrides: slow, "slow"), workers=1, queue=queue, wait=wait) as url:
        first = Background(url, SMALL_PNG)
        wait_for(url, running=1)
        try:
            yield url, slow, first
        finally:
            slow.gate.set()


def test_one_worker_one_queued_and_the_next_is_turned_away():
    with one_worker_held(queue=1, wait=30) as (url, slow, first):
        second = Background(url, SMALL_PNG)
        wait_for(url, waiting=1)
        turned_away = post(url, SMALL_PNG)
        assert_refused(turned_away, 503, "busy")
        assert int(turned_away.headers["retry-after"]) >= 1
        slow.gate.set()
        assert first.result().status == 200 and second.result().status == 200  # the queued one ran after
        assert slow.calls == 2
        wait_for(url, running=0, waiting=0)


def test_a_queued_request_gives_up_after_the_wait():
    with one_worker_held(queue=4, wait=0.3) as (url, slow, first):
        started = time.monotonic()
        assert_refused(post(url, SMALL_PNG), 503, "no worker was free within 0.3 s")
        assert time.monotonic() - started < 10
        slow.gate.set()
        assert first.result().status == 200


class BrokenSegmenter(Segmenter):
    def segment(self, image):
        raise RuntimeError("internal detail that stays on the server")


def test_a_bug_is_a_500_without_the_traceback_which_is_logged(caplog):
    service = SegmentService(lambda overrides: BrokenSegmenter(), "broken")
    with caplog.at_level(logging.ERROR, logger="segtool.serve"), running(service) as url:
        reply = post(url, SMALL_PNG)
        assert request(url, path="/health").status == 200  # still serving
    reason = assert_refused(reply, 500, "internal error")
    assert "internal detail" not in reason
    assert any("failed unexpectedly" in r.getMessage() for r in caplog.records)


def test_a_method_without_settings_refuses_k():
    from segtool.pipeline.segmenters import EllipseSegmenter

    service = SegmentService(lambda overrides: EllipseSegmenter(**overrides), "ellipse")
    with running(service) as url:
        assert_refused(post(url, png(picture()), "?k=3"), 400, "no k or rule")
        assert post(url, png(picture())).image().mean() > 0


# ---------------------------------------------------------------------------------------------
# The command.

@pytest.mark.parametrize("argv, words", [
    (["--port", "70000"], "--port"), (["--workers", "0"], "--workers"), (["--max-upload-mb", "0"], "--max-upload-mb"),
    (["--queue-wait", "-1"], "--queue-wait"), (["--method", "magic"], "unknown method 'magic'"),
    (["--method", "scvae[k=1]"], "k must be"), (["--device", "tpu"], "--device"),
])
def test_bad_options_are_one_line(argv, words, capsys):
    code, _, err = run_cli(capsys, "serve", "--method", "colour-pipeline", *argv)
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("segtool: error: ") and words in line


def test_a_port_in_use_is_one_line(capsys):
    taken = listen("127.0.0.1", 0)
    try:
        code, _, err = run_cli(capsys, "serve", "--method", "colour-pipeline", "--port", taken.getsockname()[1])
    finally:
        taken.close()
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "cannot listen on 127.0.0.1:" in line


def test_missing_server_libraries_say_what_to_install(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    code, _, err = run_cli(capsys, "serve")
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "needs uvicorn" in line and "pip install 'segtool[serve]'" in line


def test_the_command_serves_until_interrupted(tmp_path):
    """As a user runs it: the URL line, a round trip, Ctrl-C, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "segtool", "serve", "--port", "0", "--method", "colour-pipeline"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=subprocess_env(),
                            cwd=ROOT)
    try:
        lines = []
        while not any(line.startswith("segtool serve: http://") for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        url = lines[-1].split()[2]
        assert url.startswith("http://127.0.0.1:") and "method colour-pipeline" in lines[-1]
        assert request(url, path="/health").json()["status"] == "ok"
        assert post(url, png(picture())).image().shape == (96, 128)
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    assert proc.returncode in (0, 130) and "Traceback" not in rest, rest


def test_decoding_in_threads_leaves_pillows_own_limit_as_it_was():
    from PIL import Image as PILImage

    from segtool.io.images import decode_image

    before = PILImage.MAX_IMAGE_PIXELS
    data = png(picture())
    threads = [threading.Thread(target=lambda: [decode_image(data) for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert PILImage.MAX_IMAGE_PIXELS == before
