"""A local stand-in for the Hugging Face hub's URL layout, for `scail weights fetch` tests.

Serves ROOT/{owner}/{name}/... as repositories: the tree API lists every file with its size and
SHA-256 (as LFS entries), and `/{owner}/{name}/resolve/{revision}/{path}` serves bytes with Range
support. Usage: python3 fake_hub.py ROOT PORT
"""

import hashlib
import http.server
import json
import os
import sys

ROOT = sys.argv[1]


class Hub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            repo = os.path.join(ROOT, parts[2], parts[3])
            if not os.path.isdir(repo):
                return self.send_error(404)
            entries = []
            for d, _, files in os.walk(repo):
                for f in files:
                    full = os.path.join(d, f)
                    data = open(full, "rb").read()
                    rel = os.path.relpath(full, repo)
                    sha = hashlib.sha256(data).hexdigest()
                    entries.append({"type": "file", "path": rel, "size": len(data), "oid": sha,
                                    "lfs": {"oid": sha, "size": len(data), "pointerSize": 134}})
            body = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        if len(parts) >= 5 and parts[2] == "resolve":
            full = os.path.join(ROOT, parts[0], parts[1], *parts[4:])
            if not os.path.isfile(full):
                return self.send_error(404)
            data = open(full, "rb").read()
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0] or 0)
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        self.send_error(404)


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Hub).serve_forever()
