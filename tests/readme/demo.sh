#!/usr/bin/env bash
# The README's main command on a clean clone: `./scail.sh serve --demo` (system packages, the
# release build, demo weights, serving), one job submitted over plain HTTP that comes back as a
# playable video, then the browser test of the playground (tests/browser/playground.mjs) against
# the same server, its screenshots kept in $ARTIFACTS. Run by .ci/run; exits non-zero on failure.
#   tests/readme/demo.sh [ARTIFACTS_DIR]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
ARTIFACTS="${1:-${SCAIL_ARTIFACTS:-/var/cache/scail/artifacts}}"
mkdir -p "$ARTIFACTS"
tmp=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "readme demo: $*" >&2; tail -40 "$tmp/serve.err" >&2 || true; exit 1; }

git clone -q "$REPO" "$tmp/clone"

# `owner@@key`: clients send the key part.
KEY="k-test"
# The command as the README gives it, plus a free port, a private data folder and a known key.
(cd "$tmp/clone" && exec ./scail.sh serve --demo --port 0 --data-dir "$tmp/data" \
  --api-keys "tester@@$KEY") >"$tmp/serve.out" 2>"$tmp/serve.err" &
server=$!
# The first run builds the release binary: allow for a cold build.
for _ in $(seq 1 3600); do
  grep -q '^SCAIL_LISTENING ' "$tmp/serve.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || fail "scail.sh exited before serving"
  sleep 1
done
BASE=$(sed -n 's/^SCAIL_LISTENING //p' "$tmp/serve.out" | head -1)
[ -n "$BASE" ] || fail "no SCAIL_LISTENING line after an hour"
echo "readme demo: serving at $BASE"
# Fetched whole first: `grep -q` stops at the first match and would cut curl's pipe.
curl -fsS "$BASE/health" -o "$tmp/health.json" && grep -q '"weights":"demo' "$tmp/health.json" \
  || fail "/health does not say demo"
curl -fsS "$BASE/" -o "$tmp/index.html" && grep -qi '<html' "$tmp/index.html" || fail "no playground at /"

# One job: a two-second driving clip and a reference image, as data URIs.
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=160x120:rate=16 -t 2 \
  -pix_fmt yuv420p "$tmp/drive.mp4"
IMAGE="$REPO/testdata/media/ref_photo_woman_shore.jpg"
python3 - "$BASE" "$KEY" "$IMAGE" "$tmp/drive.mp4" "$tmp/out.mp4" <<'PY' || fail "the demo job failed"
import base64, json, sys, time, urllib.request
base, key, image, video, out = sys.argv[1:]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Key {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
def uri(path, mime):
    return f"data:{mime};base64," + base64.b64encode(open(path, "rb").read()).decode()
sub = call("POST", "/queue/fal-ai/scail-2", {"prompt": "a person waving",
    "image_url": uri(image, "image/jpeg"), "video_url": uri(video, "video/mp4"),
    "num_inference_steps": 2})
rid = sub["request_id"]
deadline = time.time() + 600
while True:
    st = call("GET", f"/queue/fal-ai/scail-2/requests/{rid}/status")
    if st["status"] == "COMPLETED":
        break
    if time.time() > deadline:
        sys.exit(f"job {rid} not done after 600 s: {st}")
    time.sleep(0.5)
res = call("GET", f"/queue/fal-ai/scail-2/requests/{rid}")
assert "demo-noise" in res["video"]["file_name"], res
urllib.request.urlretrieve(res["video"]["url"], out)
print("readme demo: job", rid, "->", res["video"]["file_name"], res["video"]["file_size"], "bytes")
PY
dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/out.mp4")
python3 -c "import sys; d=float(sys.argv[1]); assert abs(d-2.0) < 0.25, d" "$dur" \
  || fail "the demo video lasts $dur s, not the driving clip's 2 s"
echo "readme demo: a ${dur} s video"

# The playground in a real browser, against the same server.
SCAIL_URL="$BASE" SCAIL_KEY="$KEY" SCAIL_IMAGE="$IMAGE" SCAIL_VIDEO="$tmp/drive.mp4" \
  SCAIL_EXPECT_DURATION=2.0 SCAIL_SCREENSHOT_DIR="$ARTIFACTS" \
  node "$REPO/tests/browser/playground.mjs" || fail "the browser test failed (screenshots in $ARTIFACTS)"
echo "readme demo: passed; screenshots in $ARTIFACTS"
