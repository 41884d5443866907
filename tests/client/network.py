"""Real network parts for the client tests, all on 127.0.0.1: a TCP proxy in front of the service that loses
answers or says 503 when told to (what a flaky network or a restarting service does to a client), and a
webhook receiver that verifies signatures with the client's own verify_webhook."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_batch_client import WebhookEvent, WebhookVerificationError, verify_webhook

RECV_BYTES = 1 << 20
JOIN_SECONDS = 10.0


class FaultyProxy:
    """Forwards every connection to `upstream_port`. The next `lose_answers` connections have their request
    forwarded and the service's answer thrown away (the client sees the connection closed, as when a network
    drops an answer); the next `unavailable` connections get a 503 with Retry-After: 0 and are not forwarded.
    `connections` counts connections, `bytes_from_clients` what clients sent through to the service."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.lose_answers = 0
        self.unavailable = 0
        self.connections = 0
        self.bytes_from_clients = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # accept() wakes up to see close(): closing the socket would not wake it
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._closing = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closing = True
        self._accepting.join(JOIN_SECONDS)
        self._listener.close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:  # kept-alive connections: end them now, not at the service's keep-alive timeout
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(JOIN_SECONDS)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            with self._lock:
                self.connections += 1
                unavailable, lose = self.unavailable > 0, self.unavailable <= 0 and self.lose_answers > 0
                self.unavailable -= 1 if unavailable else 0
                self.lose_answers -= 1 if lose else 0
            serve = self._unavailable if unavailable else self._forward
            thread = threading.Thread(target=serve, args=(connection, lose), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _unavailable(self, client: socket.socket, _: bool) -> None:
        with client:
            _read_request(client)
            body = json.dumps(
                {"type": "urn:llm-batch:problem:unavailable", "title": "Service busy", "status": 503, "detail": "x"}
            ).encode()
            client.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Type: application/problem+json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )

    def _forward(self, client: socket.socket, lose_answer: bool) -> None:
        with client, socket.create_connection(self.upstream) as upstream:
            with self._lock:
                self._open.update((client, upstream))
            sending = threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True)
            sending.start()
            while True:
                try:
                    data = upstream.recv(RECV_BYTES)
                except OSError:
                    break
                if not data:
                    break
                if lose_answer:  # the service answered: the client never hears it
                    break
                client.sendall(data)
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            sending.join(JOIN_SECONDS)
            with self._lock:
                self._open.difference_update((client, upstream))

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        while True:
            try:
                data = client.recv(RECV_BYTES)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
            with self._lock:
                self.bytes_from_clients += len(data)
            try:
                upstream.sendall(data)
            except OSError:
                return


def _read_request(client: socket.socket) -> None:
    """Read one request with a Content-Length body (what the 503 answer is given to)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(RECV_BYTES)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = client.recv(RECV_BYTES)
        if not chunk:
            return
        body += chunk


class WebhookReceiver:
    """A monolith's webhook endpoint: verifies each delivery with `secret`, answers 204 (or 400 when the
    signature is wrong), keeps the verified events and calls `on_event` with each."""

    def __init__(self, secret: str, on_event: Callable[[WebhookEvent], None] | None = None) -> None:
        self.secret = secret
        self.on_event = on_event
        self.events: list[WebhookEvent] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    event = verify_webhook(dict(self.headers.items()), body, receiver.secret)
                except WebhookVerificationError:
                    receiver.refused += 1
                    self.send_response(400)
                else:
                    receiver.events.append(event)
                    if receiver.on_event is not None:
                        receiver.on_event(event)
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/llm-batch"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(JOIN_SECONDS)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
