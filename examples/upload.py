"""Uploads saved to disk a block at a time, with size and SHA-256.   Run: iodine examples/upload.py -maxbd 1024   then open http://localhost:3000

    curl -T big.iso http://localhost:3000/upload/big.iso
    -> {"name": "big.iso", "size": 734003200, "sha256": "..."}

PUT or POST the raw file as the request body to /upload/NAME (the page
does the same with fetch()). The app reads wsgi.input in 64 KiB blocks,
hashing and writing each to a temporary file beside the target, and renames
it into place only when the whole body has arrived, so a cut-off upload
never leaves a partial file under the real name. Memory use stays at one
block whatever the file's size.

Files go to $UPLOAD_DIR (default: ./uploads). The server refuses bodies
over -maxbd MiB (default 50) with 413 before the app runs; bodies over
--body-spill KiB wait in an unlinked temporary file, not in memory.
"""
import hashlib
import json
import os
import re
import tempfile

BLOCK = 64 * 1024
UPLOAD_DIR = os.path.abspath(os.environ.get("UPLOAD_DIR", "uploads"))

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iodine-py upload</title></head>
<body style="font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto">
<h1>Upload a file</h1>
<input type="file" id="file"> <button id="send">Upload</button>
<pre id="result"></pre>
<script>
document.getElementById("send").onclick = async () => {
  const file = document.getElementById("file").files[0];
  if (!file) return;
  const out = document.getElementById("result");
  out.textContent = "uploading " + file.size + " bytes\\u2026";
  const resp = await fetch("/upload/" + encodeURIComponent(file.name), {method: "PUT", body: file});
  out.textContent = resp.status + " " + await resp.text();
};
</script>
</body></html>
"""


def safe_name(raw: str) -> str:
    """A plain file name: no directories, no leading dot, nothing odd."""
    name = os.path.basename(raw.replace("\\", "/"))
    name = re.sub(r"[^\w. -]", "_", name).strip(" .")
    return name[:200]


def reply(start_response, status, obj):
    body = (json.dumps(obj) + "\n").encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def save(stream, name):
    """Copy `stream` to UPLOAD_DIR/name block by block; (size, sha256)."""
    os.makedirs(UPLOAD_DIR, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=UPLOAD_DIR, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                block = stream.read(BLOCK)
                if not block:
                    break
                digest.update(block)
                out.write(block)
                size += len(block)
        os.replace(tmp, os.path.join(UPLOAD_DIR, name))
    except BaseException:
        os.unlink(tmp)
        raise
    return size, digest.hexdigest()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    if path == "/" and method in ("GET", "HEAD"):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    if path.startswith("/upload/"):
        if method not in ("PUT", "POST"):
            return reply(start_response, "405 Method Not Allowed", {"error": "PUT or POST a body"})
        # PATH_INFO is latin-1 decoded bytes (PEP 3333): recover UTF-8 names
        name = safe_name(path[len("/upload/"):].encode("latin-1").decode("utf-8", "replace"))
        if not name:
            return reply(start_response, "400 Bad Request", {"error": "no usable file name"})
        size, sha = save(environ["wsgi.input"], name)
        expected = environ.get("CONTENT_LENGTH")
        if expected and int(expected) != size:  # the server already guarantees this
            return reply(start_response, "400 Bad Request", {"error": "short body"})
        return reply(start_response, "201 Created", {"name": name, "size": size, "sha256": sha})
    return reply(start_response, "404 Not Found", {"error": "not found"})
