"""The HTTP side of a live run: the ASGI app (app.py), the built-in server (server.py) and the
sans-IO HTTP/1.1 parsing and framing it stands on (protocol.py).

The server and protocol modules import the standard library only and know nothing about
reactions: they run any ASGI 3 HTTP application. uvicorn runs the same app when installed
(docs/http-server.md says how the two servers behave).
"""
