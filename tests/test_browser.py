"""The drawing pad in a real browser (chapter 07): headless Debian Chromium driven by Playwright.

* the built book, served on localhost: the browser's raster equals Python's, and after two strokes drawn with the
  mouse its ranking (onnxruntime-web) equals the Python retriever's for the same strokes;
* JupyterLab on localhost: the chapter is run, two strokes are drawn on the widget, the kernel receives them, and the
  pad shows the retriever's ranking.

Run by ``make browser`` (part of ``make test``, after the book is built). Needs ``/usr/bin/chromium`` (``.ci/run``
installs Debian's package; Playwright never downloads a browser). Every process started here is stopped here.
Screenshots go to ``_build/screenshots/``.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from sbir_core.data import Sketch, render_sketches

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that does not log every request."""

    def log_message(self, format: str, *args: object) -> None:
        pass
CHROMIUM = Path(os.environ.get("SBIR_CHROMIUM", "/usr/bin/chromium"))
BOOK = Path(os.environ.get("SBIR_BOOK_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = ROOT / "_build" / "screenshots"
CHAPTER = "07_draw_it_yourself"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# Two strokes in pad pixels (the pad is 256 CSS px): a shoe's sole and its upper.
STROKES = [[(30, 170), (70, 175), (140, 178), (220, 172), (228, 150)],
           [(40, 168), (50, 120), (110, 100), (160, 115), (225, 148)]]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def draw(page: object, canvas: object) -> None:
    """Drag the mouse along STROKES on ``canvas``."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / 256
    for stroke in STROKES:
        page.mouse.move(box["x"] + stroke[0][0] * scale, box["y"] + stroke[0][1] * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=5)
        page.mouse.up()


@functools.lru_cache(maxsize=1)
def chapter_retriever() -> object:
    """Chapter 07's retriever with its default parameters: chapter 02's model from the run cache."""
    from sbir_core.cache import cached_fit
    from sbir_core.config import override, preset
    from sbir_core.data import load_dataset
    from sbir_core.data.synthetic import ensure_synthetic
    from sbir_core.train import SplitTensors
    from sbir_core.widgets import Retriever

    data = load_dataset(ensure_synthetic("book", 0) / "shoe")
    cfg = override(preset("book"), ["seed=0"])
    run = cached_fit(cfg, SplitTensors.from_split(data.train, cfg.train.data_size), device="cpu", progress=False)
    test = SplitTensors.from_split(data.test, cfg.train.data_size)
    return Retriever.from_run(run, cfg, test, target=int(test.positives[0]))


# --- the published book --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book_page(browser: object) -> Iterator[object]:
    page_path = BOOK / "notebooks" / f"{CHAPTER}.html"
    if not (page_path.is_file() and (BOOK / "_static" / "pad" / "gallery.json").is_file()):
        pytest.fail(f"{BOOK}: no built book with the pad's model; build it first (make book, or make test's "
                    "book-check)")
    handler = functools.partial(QuietHandler, directory=str(BOOK))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    # sphinx-thebe's script declares THEBE_JS_URL twice on every page of the book: not the pad's
    page.on("pageerror", lambda e: "THEBE_JS_URL" not in str(e) and errors.append(str(e)))
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/notebooks/{CHAPTER}.html")
        assert page.evaluate("window.sbirPads.then((pads) => pads.filter(Boolean).length)") == 1, \
            page.locator(".sbir-pad").inner_text()
        yield page
        assert not errors, errors
    finally:
        page.close()
        server.shutdown()
        server.server_close()
        thread.join()


def test_book_raster_equals_python(book_page: object) -> None:
    rng = np.random.default_rng(0)
    sketches = [Sketch.from_strokes([rng.uniform(-5, 261, (int(rng.integers(1, 25)), 2)) for _ in range(3)])
                for _ in range(10)]
    cases = [[s.tolist() for s in sk.strokes()] for sk in sketches]
    got = book_page.evaluate("""async (cases) => {
        const pad = await import("../_static/sbir_pad.js");
        return cases.map((c) => [Array.from(pad.rasterize(c)), Array.from(pad.downsample(pad.rasterize(c), 72))]);
    }""", cases)
    full = render_sketches(sketches, 256).numpy().astype(np.uint8)
    small = np.round(render_sketches(sketches, 72).numpy() * 255).astype(np.uint8)
    for i, (ink, raster) in enumerate(got):
        np.testing.assert_array_equal(np.array(ink).reshape(256, 256), full[i], err_msg=f"sketch {i} at 256 px")
        np.testing.assert_array_equal(np.array(raster).reshape(72, 72), small[i], err_msg=f"sketch {i} at 72 px")


def test_book_ranking_after_two_strokes_equals_python(book_page: object) -> None:
    draw(book_page, book_page.locator("[data-testid=sbir-pad-canvas]").first)
    book_page.wait_for_function("document.querySelector('.sbir-pad').dataset.strokes === '2'", timeout=30_000)
    strokes = book_page.evaluate("window.sbirPads.then((pads) => pads[0].pad.strokes)")
    order = json.loads(book_page.locator(".sbir-pad").first.get_attribute("data-order"))
    status = book_page.locator(".sbir-pad-status").first.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    book_page.locator(".sbir-pad").first.screenshot(path=str(SHOTS / "book_pad.png"))
    assert len(strokes) == 2 and all(len(s) >= len(t) for s, t in zip(strokes, STROKES))
    ranking = chapter_retriever().rank(strokes)
    assert order[:10] == ranking.order[:10].tolist(), "the browser's top 10 differ from Python's"
    assert f"ranked {ranking.target_rank} of {len(ranking.order)}" in status, status


def test_book_opened_from_a_file_says_how_to_serve_it(browser: object) -> None:
    page = browser.new_page()
    try:
        page.goto((BOOK / "notebooks" / f"{CHAPTER}.html").as_uri())
        page.wait_for_function("document.querySelector('.sbir-pad').textContent.includes('needs a web server')")
        text = page.locator(".sbir-pad").inner_text()
    finally:
        page.close()
    assert text.startswith("The drawing pad needs a web server: run `make serve`") and "\n" not in text


# --- JupyterLab ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """JupyterLab on localhost with its own config, data, runtime and IPython folders; the chapter in its root."""
    base = tmp_path_factory.mktemp("lab")
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "root")}
    for d in dirs.values():
        d.mkdir()
    (dirs["root"] / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / f"{CHAPTER}.ipynb", dirs["root"] / "notebooks")
    port = free_port()
    (dirs["config"] / "jupyter_server_config.py").write_text(f"""
c.IdentityProvider.token = ""
c.ServerApp.password = ""
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = {port}
c.ServerApp.open_browser = False
c.ServerApp.disable_check_xsrf = True
c.ServerApp.allow_root = True
c.ServerApp.root_dir = {str(dirs["root"])!r}
c.LabApp.expose_app_in_browser = True
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
""")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"]), "SBIR_RECORD": "off",
           "TQDM_DISABLE": "1"}
    log = open(base / "jupyterlab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, (base / "jupyterlab.log").read_text()[-2000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        yield {"url": f"http://127.0.0.1:{port}", **dirs}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        for pid in kernels_of(dirs["runtime"]):  # a kernel the server failed to stop
            os.kill(pid, signal.SIGKILL)


def kernels_of(runtime: Path) -> list[int]:
    """Processes whose command line names a connection file in ``runtime``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(runtime) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def kernel_json(runtime: Path, code: str) -> object:
    """Run ``code`` (which prints one JSON line) in the lab's only kernel, through jupyter_client."""
    from jupyter_client import BlockingKernelClient

    (connection,) = runtime.glob("kernel-*.json")
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    messages: list[dict] = []
    try:
        reply = client.execute_interactive(code, timeout=60, output_hook=messages.append)
    finally:
        client.stop_channels()
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads("".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream"))


KERNEL_IDLE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const session = widget && widget.sessionContext && widget.sessionContext.session;
    const kernel = session && session.kernel;
    return Boolean(kernel) && kernel.status === "idle";
}"""
ALL_RUN = """() => {
    const prompts = [...document.querySelectorAll(".jp-CodeCell .jp-InputArea-prompt")].map((e) => e.textContent);
    return prompts.length > 0 && prompts.every((t) => /\\[\\d+\\]/.test(t));
}"""


def test_jupyterlab_pad_sends_strokes_and_shows_the_retrievers_ranking(browser: object, lab: dict) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{lab['url']}/lab/tree/notebooks/{CHAPTER}.ipynb")
        page.wait_for_function(KERNEL_IDLE, timeout=90_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(ALL_RUN, timeout=300_000, polling=500)
        canvas = page.locator("[data-testid=sbir-pad-canvas]").first
        canvas.wait_for(timeout=30_000)
        pad = page.locator(".sbir-pad-root").first.locator("xpath=..")
        pad.get_by_role("button", name="Clear").click()
        draw(page, canvas)
        page.wait_for_function("[...document.querySelectorAll('.sbir-pad-status')]"
                               ".some((e) => e.textContent.startsWith('after stroke 2:'))", timeout=30_000)
        shown = pad.locator("[data-testid=sbir-pad-top] img").evaluate_all("(imgs) => imgs.map((i) => i.alt)")
        SHOTS.mkdir(parents=True, exist_ok=True)
        pad.screenshot(path=str(SHOTS / "jupyterlab_pad.png"))
        kernel = kernel_json(lab["runtime"], "import json\n"
                             "r = retriever.rank(pad.strokes)\n"
                             "print(json.dumps({'points': [len(s) for s in pad.strokes], "
                             "'order': [retriever.names[i] for i in r.order[:TOP_K]], 'rank': r.target_rank, "
                             "'shown': [t['label'] for t in pad.results['top']], 'shown_rank': pad.results['rank']}))")
    finally:
        page.close()
    assert len(kernel["points"]) == 2 and min(kernel["points"]) >= 2, f"the kernel received {kernel['points']}"
    assert kernel["shown"] == kernel["order"] and kernel["shown_rank"] == kernel["rank"]
    assert shown == kernel["order"], "the pad in the browser shows another ranking than the kernel's retriever"
