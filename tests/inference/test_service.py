"""``python -m csa_keras.serve``: the HTTP API answered by a real server, its limits, its page.

The API tests start the command itself on a free loopback port with a tiny
CSA and send real HTTP requests. The queue test runs the application under
uvicorn in this process with a predictor that waits until told, so a full
queue is certain rather than a race.
"""
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from csa_keras.inference import loading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 120):
    """(status, JSON answer) of a request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_json(url, data, headers=None):
    status, body = request(url, data, headers)
    return status, json.loads(body)


def multipart(field: str, content: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels, with a tiny (broken) image body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server(tiny_run):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "csa_keras.serve", "--model", str(tiny_run),
                                "--port", str(port), "--max-request-mb", "1", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server stopped: {process.stderr.read()[-2000:]}")
        try:
            if request(url + "/health", timeout=2)[0] == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the server did not answer /health within 240 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_health_and_models(server, tiny_run):
    status, body = request(server + "/health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["model"] == str(tiny_run / "classifier.keras")
    models = json.loads(request(server + "/models")[1])
    assert models["serving"]["class_names"] == json.loads((tiny_run / "metrics.json").read_text())["class_names"]
    assert {"name": loading.DEFAULT_MODEL, "default": True} in models["pretrained"]
    assert {"name": "csa_fer2013", "default": False} in models["pretrained"]


def test_predict_answers_the_records_predict_prints(server, tiny_run, grace_hopper):
    from csa_keras.inference.predictor import Predictor
    from csa_keras.inference.records import rounded_record

    photo = grace_hopper.read_bytes()
    expected = [rounded_record(r) for r in Predictor.from_run(tiny_run).predict(photo)]
    status, raw = post_json(server + "/predict", photo, {"Content-Type": "image/jpeg"})
    assert status == 200, raw
    assert raw["records"] == expected and expected[0]["status"] == "ok"
    body, headers = multipart("file", photo)
    status, form = post_json(server + "/predict", body, headers)
    assert status == 200 and form["records"] == expected


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"not an image at all", 415, "not a usable image: unreadable image"),
    (b"", 415, "empty request"),
    (png_header_only(60000, 60000), 413, "not a usable image: image too large"),
])
def test_refusals_are_one_line_with_their_status(server, body, status, words):
    answer_status, answer = post_json(server + "/predict", body, {"Content-Type": "application/octet-stream"})
    assert answer_status == status and answer["error"].startswith(words) and "\n" not in answer["error"]
    assert request(server + "/health")[0] == 200  # and the server goes on


def test_a_request_declaring_more_than_the_limit_is_refused_before_its_body_is_read(server):
    import http.client
    import urllib.parse

    where = urllib.parse.urlsplit(server)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", str(2**20 + 1))
    connection.endheaders()  # the body is never sent: the answer comes from the header alone
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"error": "request larger than 1048576 bytes"}
    connection.close()


def test_a_form_without_the_file_field_is_refused(server, grace_hopper):
    body, headers = multipart("photo", grace_hopper.read_bytes())
    assert post_json(server + "/predict", body, headers) == (415, {"error": "the form has no file field named 'file'"})


def test_the_page_is_served(server):
    status, body = request(server + "/")
    assert status == 200 and b'id="file"' in body and b"fetch(\"predict\"" in body


class WaitingPredictor:
    """Answers one empty record list per image, once ``release`` is set."""

    class_names = ("a", "b")

    def __init__(self):
        self.release, self.started = threading.Event(), threading.Event()

    def predict(self, data):
        self.started.set()
        self.release.wait(60)
        return []


def test_a_full_queue_is_refused_with_503_and_the_waiting_request_is_answered():
    import uvicorn

    from csa_keras.inference.service import create_app

    predictor = WaitingPredictor()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor, "waiting", queue=0), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    first = {}
    sender = threading.Thread(target=lambda: first.update(answer=post_json(url + "/predict", b"image")))
    sender.start()
    assert predictor.started.wait(30)
    assert json.loads(request(url + "/health")[1])["busy"] == 1
    assert post_json(url + "/predict", b"image") == (503, {"error": "busy: 1 requests are being served or wait; "
                                                                    "try again"})
    predictor.release.set()
    sender.join(30)
    assert first["answer"] == (200, {"model": "waiting", "records": []})
    server.should_exit = True
    thread.join(30)


def test_bad_settings_are_refused_in_one_line():
    from csa_keras.inference.service import create_app

    with pytest.raises(ValueError, match=r"^queue must be an integer of at least 0. Received: queue=-1$"):
        create_app(WaitingPredictor(), "x", queue=-1)
    with pytest.raises(ValueError, match=r"^max_request_bytes must be a positive integer"):
        create_app(WaitingPredictor(), "x", max_request_bytes=0)


def chromium() -> str:
    import shutil

    pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    return path


def test_a_person_uploads_a_photo_and_sees_the_label(server, grace_hopper, tmp_path):
    """The page in a real headless browser: choose a photograph, see its face boxed and labelled."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            page.goto(server + "/")
            page.wait_for_function("document.getElementById('model').textContent !== '…'")
            page.set_input_files("#file", str(grace_hopper))
            page.wait_for_selector("body[data-faces='1']", timeout=120_000)
            status = page.text_content("#status")
            label = page.text_content("#faces tr:nth-child(2) td:nth-child(2)")
            drawn = page.evaluate("document.getElementById('canvas').width")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
    _, answer = post_json(server + "/predict", grace_hopper.read_bytes())
    assert status.startswith("1 face (model ")
    assert label == answer["records"][0]["label"]
    assert drawn == 512  # the photograph's own width: the canvas shows it whole, box drawn over it
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_service_runs_the_model_in_the_box_on_litert(grace_hopper):
    """``--runtime litert``: the default model's TFLite artifact answers, with the Keras path's label."""
    pytest.importorskip("ai_edge_litert")
    from csa_keras.inference.predictor import Predictor

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "csa_keras.serve", "--runtime", "litert", "--port", str(port),
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()[-2000:]
            try:
                if request(url + "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        models = json.loads(request(url + "/models")[1])
        status, answer = post_json(url + "/predict", grace_hopper.read_bytes())
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert models["serving"]["runtime"] == "litert" and models["serving"]["name"] == loading.DEFAULT_MODEL
    keras_label = Predictor.pretrained(runtime="keras").predict(grace_hopper.read_bytes())[0]["label"]
    assert status == 200 and answer["records"][0]["label"] == keras_label
