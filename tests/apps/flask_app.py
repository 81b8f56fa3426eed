"""A small real Flask application: a route, JSON in and out, a form POST and
a streamed response."""

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)

STREAM_PARTS = ["part-%d\n" % i for i in range(5)]


@app.route("/")
def index():
    return "flask index"


@app.route("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, name="item-%d" % item_id, q=request.args.get("q"))


@app.route("/json", methods=["POST"])
def json_echo():
    data = request.get_json()
    return jsonify(received=data, count=len(data) if hasattr(data, "__len__") else None)


@app.route("/form", methods=["POST"])
def form():
    return jsonify(form=request.form.to_dict(flat=False))


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data))


@app.route("/stream")
def stream():
    def generate():
        for part in STREAM_PARTS:
            yield part

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/missing-on-purpose")
def missing():
    return "nope", 404
