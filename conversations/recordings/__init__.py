"""Recordings to delete at the voice provider after an erase or a retention purge (an outbox, see services)."""
