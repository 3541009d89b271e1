"""tests/mailfiles.py reads back what Django's file backend wrote, as the recipient would receive it."""

from django.core.mail import EmailMessage, get_connection

from tests.mailfiles import email_url, sent_emails, text_of


def test_every_message_comes_back_parsed_in_order(tmp_path, settings):
    import environ

    config = environ.Env.email_url_config(email_url(tmp_path))
    assert config["EMAIL_FILE_PATH"] == str(tmp_path)  # what a child process reads from EMAIL_URL
    connection = get_connection(config["EMAIL_BACKEND"], file_path=config["EMAIL_FILE_PATH"])
    first = EmailMessage("Código", "Tu código es 123456 — ¡gracias!", "clinic@example.com", ["ana@example.com"])
    second = EmailMessage("Confirmed", "Tuesday 3:00 PM\n" + "-" * 40, "clinic@example.com", ["jo@example.com"])
    connection.send_messages([first, second])
    EmailMessage("Later", "third", "clinic@example.com", ["x@example.com"], connection=connection).send()

    got = sent_emails(tmp_path)
    assert [m["Subject"] for m in got] == ["Código", "Confirmed", "Later"]
    assert text_of(got[0]).strip() == "Tu código es 123456 — ¡gracias!"
    assert got[1]["To"] == "jo@example.com" and "Tuesday 3:00 PM" in text_of(got[1])
