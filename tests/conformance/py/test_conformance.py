"""The official fal-client (PyPI) against a live scail server.

Run by crates/scail-server/tests/conformance.rs, which starts the server and passes SCAIL_BASE,
SCAIL_KEY (owner alice), SCAIL_KEY_OTHER (owner bob) and SCAIL_MEDIA (test media).
"""

import base64
import hashlib
import os
import time
import urllib.request

import fal_client
import fal_client.client as fc
import pytest

BASE = os.environ["SCAIL_BASE"]
KEY = os.environ["SCAIL_KEY"]
OTHER = os.environ["SCAIL_KEY_OTHER"]
MEDIA = os.environ["SCAIL_MEDIA"]
EP = "fal-ai/scail-2"

# The client reads these module constants at call time.
fc.QUEUE_URL_FORMAT = f"{BASE}/queue/"
fc.RUN_URL_FORMAT = f"{BASE}/run/"
fc.REST_URL = f"{BASE}/rest"
fc.CDN_URL = f"{BASE}/cdn"


def get(url: str) -> bytes:
    with urllib.request.urlopen(url) as r:
        return r.read()


def inp(steps=3, **extra):
    d = {
        "prompt": "a person dancing",
        "image_url": f"{MEDIA}/ref.png",
        "video_url": f"{MEDIA}/drive.mp4",
        "num_inference_steps": steps,
        "seed": 13,
    }
    d.update(extra)
    return d


def check_video(out):
    assert out["video"]["content_type"] == "video/mp4"
    b = get(out["video"]["url"])
    assert len(b) == out["video"]["file_size"]
    assert b[4:8] == b"ftyp"


@pytest.fixture
def client():
    return fal_client.SyncClient(key=KEY)


def test_subscribe_with_logs_and_queue_updates(client):
    updates = []
    out = client.subscribe(EP, inp(5), with_logs=True, on_queue_update=updates.append)
    assert out["seed"] == 13
    check_video(out)
    assert isinstance(updates[-1], fal_client.Completed)
    assert any(isinstance(u, fal_client.InProgress) and u.logs for u in updates) or updates[-1].logs


def test_submit_status_result_with_priority_and_timeout(client):
    h = client.submit(EP, inp(2), priority="low", start_timeout=60)
    assert h.request_id
    for _ in range(300):
        s = h.status(with_logs=True)
        if isinstance(s, fal_client.Completed):
            break
        assert isinstance(s, (fal_client.Queued, fal_client.InProgress))
        time.sleep(0.05)
    assert isinstance(s, fal_client.Completed)
    assert s.error is None
    assert isinstance(s.metrics["inference_time"], float)
    assert s.logs
    check_video(h.get())


def test_sync_run(client):
    check_video(client.run(EP, inp(1)))


def test_cancel_in_all_four_states(client):
    running = client.submit(EP, inp(100))
    queued = client.submit(EP, inp(1))
    for _ in range(200):
        if isinstance(running.status(), fal_client.InProgress):
            break
        time.sleep(0.05)
    q = queued.status()
    assert isinstance(q, fal_client.Queued) and q.position == 0
    queued.cancel()
    running.cancel()
    for h in (queued, running):
        for _ in range(100):
            s = h.status()
            if isinstance(s, fal_client.Completed):
                break
            time.sleep(0.05)
        assert isinstance(s, fal_client.Completed)
        assert s.error == "Request was cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as e:
        running.cancel()
    assert e.value.status_code == 400
    unknown = client.get_handle(EP, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(fal_client.FalClientHTTPError) as e:
        unknown.cancel()
    assert e.value.status_code == 404


@pytest.mark.parametrize("repository", ["fal_v3", "fal"])
def test_upload_both_paths_then_use(client, repository):
    mp4 = get(f"{MEDIA}/drive.mp4")
    url = client.upload(mp4, "video/mp4", file_name="drive.mp4", repository=repository)
    assert get(url) == mp4
    check_video(client.subscribe(EP, inp(1, video_url=url)))


def test_upload_multipart_over_100_mb(client):
    big = os.urandom(101 * 1024 * 1024)
    url = client.upload(big, "application/octet-stream", file_name="big.bin")
    back = get(url)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(big).hexdigest()


def test_upload_file_and_data_uri(client, tmp_path):
    p = tmp_path / "ref.png"
    p.write_bytes(get(f"{MEDIA}/ref.png"))
    url = client.upload_file(p)
    mp4 = get(f"{MEDIA}/drive.mp4")
    data_uri = "data:video/mp4;base64," + base64.b64encode(mp4).decode()
    check_video(client.subscribe(EP, inp(1, image_url=url, video_url=data_uri)))


def test_wrong_key_and_other_owner():
    with pytest.raises(fal_client.FalClientHTTPError) as e:
        fal_client.SyncClient(key="wrong").submit(EP, inp(1))
    assert e.value.status_code == 401
    h = fal_client.SyncClient(key=KEY).submit(EP, inp(1))
    other = fal_client.SyncClient(key=OTHER).get_handle(EP, h.request_id)
    with pytest.raises(fal_client.FalClientHTTPError) as e:
        other.status()
    assert e.value.status_code == 404


def test_invalid_input_422(client):
    with pytest.raises(fal_client.FalClientHTTPError) as e:
        client.submit(EP, inp(1, guidance_scale="lots"))
    assert e.value.status_code == 422
    assert "guidance_scale" in str(e.value.response.json()["detail"][0]["loc"])
