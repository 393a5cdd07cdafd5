"""Screenshots of a real TensorBoard in a real browser: the proof behind docs/tensorboard.md.

    python benchmarks/tensorboard_screenshots.py --data-dir /path/to/kaggle --output docs/images

trains a small run (`fit --config cnn.yaml`, 3 epochs of 40 batches on the real data, unless
`--logdir` names runs that exist), starts `tensorboard` on 127.0.0.1, opens it in headless Chromium
(Debian's `chromium`) and saves PNG screenshots of the landing view (Custom Scalars), the mistakes
card and the confusion matrix at Time Series' default card size, the PR curves, HParams and the
projector.

Chromium's own `--screenshot` draws no chart lines (they are WebGL) and cannot click, so the page
is driven over the DevTools protocol (a websocket, with aiohttp, which Lightning installs); this
protocol client is the part written by hand, there being no browser driver among the project's
dependencies. The PNGs are reduced to 256 colours (Pillow) to stay small.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from PIL import Image

WIDTH, HEIGHT = 1400, 1000  # the browser window: Time Series cards are then TensorBoard's default width
# (name, URL fragment after the host, seconds to wait for drawing, JavaScript giving a clip rect or null)
CARD_OF_IMAGE = """(() => {
  const card = document.querySelector('card-view');
  if (!card) return null;
  const r = card.getBoundingClientRect();
  return JSON.stringify([r.x - 8, r.y - 8, r.width + 16, r.height + 16]);
})()"""
VIEWS = [
    ("tensorboard_landing.png", "/#custom_scalars", 12, None),
    ("tensorboard_mistakes_cards.png", "/?tagFilter=val_mistakes_by_digit#timeseries", 12, None),
    ("tensorboard_confusion_card.png", "/?tagFilter=val_confusion_matrix%2Fcounts#timeseries", 10,
     CARD_OF_IMAGE),
    ("tensorboard_pr_curves.png", "/#pr_curves", 10, None),
    ("tensorboard_hparams.png", "/#hparams", 10, None),
    ("tensorboard_projector.png", "/#projector", 25, None),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 90) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def train(data_dir: Path, workdir: Path) -> Path:
    """A small `fit` of the reference recipe on the real data: 3 epochs of 40 batches."""
    subprocess.run([sys.executable, "-m", "digit_recognizer", "fit", "--config", "cnn.yaml",
                    "--data.data_dir", str(data_dir), "--data.download", "false",
                    "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "40",
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"],
                   cwd=workdir, check=True)
    return workdir / "lightning_logs"


class DevTools:
    """Just enough of Chromium's DevTools protocol: send a command, await its answer."""

    def __init__(self, socket_: aiohttp.ClientWebSocketResponse) -> None:
        self.socket, self.next_id = socket_, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.socket.receive_json(timeout=120)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


async def screenshot(tools: DevTools, base: str, fragment: str, wait: float, clip_js: str | None, path: Path) -> None:
    await tools.call("Page.navigate", url="about:blank")
    await tools.call("Page.navigate", url=base + fragment)
    await asyncio.sleep(wait)
    params: dict = {"format": "png"}
    if clip_js:
        found = (await tools.call("Runtime.evaluate", expression=clip_js, returnByValue=True))["result"].get("value")
        if found:
            x, y, width, height = json.loads(found)
            params["clip"] = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
    data = base64.b64decode((await tools.call("Page.captureScreenshot", **params))["data"])
    image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256)
    image.save(path, optimize=True)
    print(f"{path} {image.size[0]}x{image.size[1]} {path.stat().st_size // 1024} KB")


async def shoot_all(base: str, output: Path, chromium: str) -> None:
    port = free_port()
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
         "--use-angle=swiftshader", f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
         f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pages = json.loads(wait_for_http(f"http://127.0.0.1:{port}/json/list"))
        target = next(p for p in pages if p.get("type") == "page")
        async with aiohttp.ClientSession() as session, session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
            for name, fragment, wait, clip_js in VIEWS:
                await screenshot(tools, base, fragment, wait, clip_js, output / name)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="folder of the Kaggle CSVs, to train the run")
    parser.add_argument("--logdir", type=Path, help="an existing lightning_logs folder instead of training")
    parser.add_argument("--output", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    if (args.data_dir is None) == (args.logdir is None):
        parser.error("give --data-dir (to train a run) or --logdir")
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tb-screenshots-") as workdir:
        logdir = args.logdir or train(args.data_dir.resolve(), Path(workdir))
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/data/runs")
            time.sleep(5)  # the first load of the event files
            asyncio.run(shoot_all(base, args.output, args.chromium))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
