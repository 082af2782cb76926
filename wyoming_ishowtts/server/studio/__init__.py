"""The voice studio (``--http-port``): a web page to add, check and try cloned voices and to see how fast the
server is, served by the Wyoming server's process on its event loop (docs/studio.md).

It is a room of the server layer: `Service` (server/app.py) starts it; it uses the engine worker, the request
log (metrics.py) and the voices layer, and nothing else of the server (not the Wyoming protocol). Modules:
app.py (the routes and the site), guard.py (who may ask), forms.py (what a client sends, with limits),
uploads.py (decoding uploaded clips), catalog.py (what the page shows about each voice), folders.py (writing voice
folders atomically), speech.py (a preview through the worker), errors.py, static/ (the page, no build step).
"""
