"""The web chat channel: websocket consumer at ``/ws/chat/``, the ``/widget.js`` widget, signed chat links."""
