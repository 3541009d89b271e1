"""``manage.py simulate`` talks to the port ``make run`` serves on (``WEB_PORT``) unless ``--server`` says otherwise."""

from channels_app.management.commands.simulate import Command


def _default_server() -> str:
    parser = Command().create_parser("manage.py", "simulate")
    return parser.parse_args(["sms", "--from", "+15551230001", "--body", "hi"]).server


def test_server_defaults_to_web_port(monkeypatch):
    monkeypatch.setenv("WEB_PORT", "8123")
    assert _default_server() == "http://127.0.0.1:8123"
    monkeypatch.delenv("WEB_PORT")
    assert _default_server() == "http://127.0.0.1:8000"
