"""The page of `segtool serve` in a real browser: headless Chromium, driven over the DevTools protocol,
drops an image on the page (and picks one with the file input) and the test reads back the mask the page
displays. Needs Debian's `chromium` (apt-get install -y chromium); skipped, saying so, where it is absent."""

import base64
import io
import itertools
import json
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")
websockets_client = pytest.importorskip("websockets.sync.client", reason="the page test drives Chromium with "
                                                                         "websockets: pip install -e '.[test]'")
pytest.importorskip("starlette", reason="segtool serve needs the 'serve' extra: pip install -e '.[serve]'")

from test_serve import picture, png, post, running  # noqa: E402
from segtool.serve.service import make_service  # noqa: E402


class DevTools:
    """The least of a DevTools-protocol client: one page, commands answered in order, events ignored."""

    def __init__(self, socket):
        self.socket = socket
        self.ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def server():
    service = make_service("colour-pipeline")
    service.start()
    with running(service) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it chose here
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        with websockets_client.connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            yield DevTools(socket)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def open_page(browser: DevTools, url: str) -> None:
    browser.send("Page.navigate", url=url)
    browser.wait_until("document.readyState === 'complete' && document.body.dataset.state === 'idle' && "
                       "document.getElementById('server').textContent.startsWith('Method')")


def drop(browser: DevTools, data: bytes, name: str, kind: str = "image/png") -> str:
    """Drop a file on the drop zone as a person would, and wait for the page to finish."""
    encoded = base64.b64encode(data).decode()
    browser.evaluate(f"""(() => {{
        const bytes = Uint8Array.from(atob("{encoded}"), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], {json.dumps(name)}, {{ type: {json.dumps(kind)} }}));
        document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", {{ dataTransfer: transfer, bubbles: true, cancelable: true }}));
    }})()""")
    return finished(browser)


def finished(browser: DevTools) -> str:
    return browser.wait_until("['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state")


def displayed(browser: DevTools, kind: str) -> dict:
    """What the page shows for one output: the image's PNG bytes, its decoded size, the pixels the
    browser drew (red channel, read through a canvas) and its download link."""
    info = browser.evaluate(f"""(() => {{
        const image = document.getElementById("{kind}-img");
        const link = document.getElementById("{kind}-link");
        const canvas = document.createElement("canvas");
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
        const context = canvas.getContext("2d");
        context.drawImage(image, 0, 0);
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
        const red = [];
        for (let i = 0; i < pixels.length; i += 4) red.push(pixels[i]);
        return {{ src: image.src, width: image.naturalWidth, height: image.naturalHeight, red,
                  href: link.href, download: link.download, visible: image.offsetWidth > 0 }};
    }})()""")
    prefix = "data:image/png;base64,"
    assert info["src"].startswith(prefix)
    info["png"] = base64.b64decode(info["src"][len(prefix):])
    info["red"] = np.array(info["red"], np.uint8).reshape(info["height"], info["width"])
    return info


def test_a_dropped_image_shows_mask_overlay_and_cutout_with_downloads(browser, server):
    image = picture()
    open_page(browser, server)
    assert drop(browser, png(image), "photo.png") == "done"
    expected = post(server, png(image)).image()  # the API's mask for the same image
    mask = displayed(browser, "mask")
    assert (mask["width"], mask["height"]) == (128, 96) and mask["visible"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(mask["png"]))), expected)
    assert np.array_equal(mask["red"], expected)  # what the browser drew
    assert mask["download"] == "photo_mask.png" and mask["href"] == mask["src"]
    for kind in ("overlay", "cutout"):
        shown = displayed(browser, kind)
        assert (shown["width"], shown["height"]) == (128, 96) and shown["visible"]
        assert shown["download"] == f"photo_{kind}.png"
    cutout = np.asarray(Image.open(io.BytesIO(displayed(browser, "cutout")["png"])))
    assert np.array_equal(cutout[..., 3], expected)
    status = browser.evaluate("document.getElementById('status').textContent")
    assert "photo.png: 128x96" in status and "foreground" in status


def test_a_picked_file_is_segmented_too(browser, server, tmp_path):
    image = picture(80, 60)
    path = tmp_path / "picked.png"
    path.write_bytes(png(image))
    open_page(browser, server)
    node = browser.send("DOM.querySelector", nodeId=browser.send("DOM.getDocument")["root"]["nodeId"],
                        selector="#file")["nodeId"]
    browser.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)
    assert finished(browser) == "done"
    mask = displayed(browser, "mask")
    assert (mask["width"], mask["height"]) == (60, 80)
    assert np.array_equal(mask["red"], post(server, png(image)).image())


def test_a_dropped_non_image_shows_the_servers_reason(browser, server):
    open_page(browser, server)
    assert drop(browser, b"just some text\n" * 20, "notes.txt", "text/plain") == "error"
    status = browser.evaluate("document.getElementById('status').textContent")
    assert status.startswith("notes.txt: ") and "not an image" in status
    assert browser.evaluate("document.getElementById('results').hidden") is True
