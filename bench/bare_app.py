"""The ceiling for bench/ingest.py: a bare Flask app with one trivial POST route."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/stripe")
    def receive() -> tuple[Response, int]:
        request.get_data()
        return jsonify(received=True), 200

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
