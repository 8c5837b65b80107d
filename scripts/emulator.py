"""moto server for deckhand's tests and demo, with every request applied atomically.

moto's backends take no locks, so under its threaded server two conditional writes to one
DynamoDB item can both pass their condition. DynamoDB itself applies each request atomically,
and deckhand's per-service lock relies on that; serialising requests restores it.

As a program: `python scripts/emulator.py PORT` prints `ready` once listening and serves until
its standard input closes, so it never outlives the process that started it.
"""

import logging
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class Serialized:
    """A WSGI app that handles one request at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


class Emulator:
    def __init__(self, port, host="127.0.0.1"):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = Serialized(DomainDispatcherApplication(create_backend_app))
        self.server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.thread.join()


if __name__ == "__main__":
    emulator = Emulator(int(sys.argv[1])).start()
    print("ready", flush=True)
    sys.stdin.read()
    emulator.stop()
