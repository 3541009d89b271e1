"""The agent: one engine for every channel (``engine.turn`` / ``engine.greet``), its tools, two backends
(``local`` slot-filling with dateparser, ``openai`` tool calling) and cross-channel continuity."""
