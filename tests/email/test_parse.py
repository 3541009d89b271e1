"""Reply extraction and parsing on messages shaped like common mail clients send them."""

from __future__ import annotations

import pytest

from channels_app.email.parse import parse, sanitize_html
from channels_app.email.reply_text import extract_reply, reply_of
from tests.email.conftest import plain

OUTLOOK = """Can you make it 3 PM?

Best regards,
Jane Doe
--
Jane Doe | Acme Corp | +1 555 0100

________________________________
From: Sunrise Clinic <frontdesk@sunrise.example>
Sent: Monday, March 2, 2026 9:12 AM
To: Jane Doe <jane.doe@example.com>
Subject: Your appointment at Sunrise Clinic

Sunrise Clinic: your appointment is confirmed for Wednesday at 10:00 AM.
"""

APPLE = """Can you make it 3 PM?

Sent from my iPhone

> On Mar 2, 2026, at 9:12 AM, Sunrise Clinic <frontdesk@sunrise.example> wrote:
>
> Sunrise Clinic: your appointment is confirmed for Wednesday at 10:00 AM.
"""

ORIGINAL_MESSAGE = """Can you make it 3 PM?

-----Original Message-----
From: Sunrise Clinic <frontdesk@sunrise.example>
Sent: Monday, March 2, 2026 9:12 AM
Subject: Your appointment

Sunrise Clinic: your appointment is confirmed.
"""


@pytest.mark.parametrize("text", [OUTLOOK, APPLE, ORIGINAL_MESSAGE], ids=["outlook", "apple-mail", "original-message"])
def test_reply_extraction_drops_history_and_signature(text):
    reply = extract_reply(text)
    assert reply.startswith("Can you make it 3 PM?")
    for leftover in ("confirmed", "From:", "wrote:", "iPhone", "Acme Corp", ">"):
        assert leftover not in reply


def test_html_only_reply_drops_the_blockquote():
    msg = plain(body="ignored")
    msg.set_content(
        '<div>Can you make it 3 PM?</div><div class="gmail_quote">On Mon, Mar 2, 2026 at 9:12 AM '
        "Sunrise Clinic wrote:<blockquote>Your appointment is confirmed.</blockquote></div>",
        subtype="html",
    )
    parsed = parse(msg.as_bytes())
    assert not parsed.has_text_part
    assert reply_of(parsed) == "Can you make it 3 PM?"


def test_threading_ids_and_addresses_are_normalised():
    msg = plain(
        body="hi",
        sender='"Doe, Jane" <Jane.Doe@Example.COM>',
        to="Front <Frontdesk+abc123@Sunrise.example>",
        headers={"In-Reply-To": "<b@x>", "References": "<a@x> <b@x>"},
    )
    parsed = parse(msg.as_bytes())
    assert parsed.from_address == "jane.doe@example.com" and parsed.from_name == "Doe, Jane"
    assert parsed.recipients == ["frontdesk+abc123@sunrise.example"]
    assert parsed.thread_ids == ["<b@x>", "<a@x>"]


def test_message_without_message_id_gets_a_stable_synthetic_one():
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    assert parse(raw).message_id == parse(raw).message_id
    assert parse(raw).message_id.endswith("@callsphere.invalid>")


def test_sanitize_html_keeps_text_and_safe_markup_only():
    cleaned = sanitize_html(
        '<p onclick="x()">Hi <a href="javascript:evil()">x</a><a href="https://ok.example">ok</a>'
        '<script>evil()</script><img src="https://track.example/p.gif"></p>'
    )
    assert cleaned.startswith("<p>Hi ") and 'href="https://ok.example"' in cleaned
    for bad in ("onclick", "javascript", "<script", "evil()", "<img"):
        assert bad not in cleaned
