"""Proof of possession before chat uses a phone or email (services, no websocket): the same reply whether or not
it is on file, a code in both cases, nothing attached until the code comes back, and then stored as verified."""

import re

import pytest
from django.core import mail

from channels_app.chat import services, verification
from channels_app.chat.visitors import visitor_key
from conversations.models import ChannelMessage
from identity.models import CustomerIdentifier
from identity.services import customer_resolve

pytestmark = pytest.mark.django_db
VISITOR = "w" * 8 + "0123456789abcdef"
PATIENT = "+14155552671"
STRANGER = "+14155552672"


def session_for(tenant, visitor: str = VISITOR):
    session, _ = services.chat_hello(tenant=tenant, visitor=visitor)
    return session


def say(session, text: str, n: int = 1) -> str:
    return services.chat_message(session=session, client_id=f"msg-{n:06d}", text=text)[-1]["text"]


def texted_codes(to: str) -> list[str]:
    """The verification codes texted to ``to``, oldest first (read from the outbound SMS rows recorded)."""
    bodies = ChannelMessage.objects.filter(recipient=to, idempotency_key__startswith="chat-verify:").order_by("id")
    return [re.search(r"\b(\d{6})\b", body).group(1) for body in bodies.values_list("body", flat=True)]


def test_email_claim_is_proven_by_the_emailed_code(tenant):
    owner = customer_resolve(tenant=tenant, email="ana@example.com", verified_kinds=("email",)).customer
    session = session_for(tenant)
    assert say(session, "I'm ana@example.com") == verification.SENT["email"]
    assert session.customer != owner
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    assert mail.outbox[-1].to == ["ana@example.com"]
    say(session, code, 2)
    assert session.customer == owner
    assert CustomerIdentifier.objects.get(kind="cookie", value=visitor_key(VISITOR)).customer == owner
    # single use: the same code again is just a message, not a second proof
    assert verification.challenge_answer(tenant=tenant, visitor_key=session.visitor_key, text=code) is None


def test_a_number_on_file_and_an_unknown_one_get_the_same_reply_and_a_code(tenant):
    owner = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    on_file = say(session_for(tenant, "a" * 16), f"my number is {PATIENT}")
    unknown = say(session_for(tenant, "b" * 16), f"my number is {STRANGER}")
    assert on_file == unknown == verification.SENT["phone"]
    assert "ending in" not in on_file and "71" not in on_file
    assert len(texted_codes(PATIENT)) == len(texted_codes(STRANGER)) == 1
    # the unknown number is attached to nobody until its code comes back; the known one stays its owner's
    assert not CustomerIdentifier.objects.filter(value=STRANGER).exists()
    assert list(CustomerIdentifier.objects.filter(value=PATIENT).values_list("customer", flat=True)) == [owner.pk]


def test_a_new_number_is_attached_verified_only_once_its_code_is_typed_back(tenant):
    session = session_for(tenant)
    say(session, "book me for Tuesday, my number is 415 555 2672")
    assert not CustomerIdentifier.objects.filter(kind="phone").exists()
    wrong = f"{(int(texted_codes(STRANGER)[0]) + 1) % 10**6:06d}"
    assert "doesn't match" in say(session, wrong, 2)
    assert not CustomerIdentifier.objects.filter(kind="phone").exists()
    assert say(session, texted_codes(STRANGER)[0], 3) == verification.CONFIRMED["phone"]
    ident = CustomerIdentifier.objects.get(kind="phone", value=STRANGER)
    assert ident.customer == session.customer and ident.verified
    assert session.identified_by == "phone"


def test_ones_own_unverified_number_is_proven_by_its_code_and_a_verified_one_needs_none(tenant):
    session = session_for(tenant)
    say(session, "hello")
    legacy = CustomerIdentifier.objects.create(
        tenant=tenant, customer=session.customer, kind="phone", value=PATIENT, verified=False
    )  # typed in chat before codes
    assert say(session, f"call me on {PATIENT}", 2) == verification.SENT["phone"]
    say(session, texted_codes(PATIENT)[0], 3)
    legacy.refresh_from_db()
    assert legacy.verified and legacy.customer == session.customer
    assert "code" not in say(session, f"my number is {PATIENT}", 4)  # proven: no second code
    assert len(texted_codes(PATIENT)) == 1


def test_codes_per_visitor_are_limited(tenant):
    session = session_for(tenant)
    replies = [say(session, f"call me on 415 555 26{n:02d}", n) for n in range(4)]
    assert replies[:3] == [verification.SENT["phone"]] * 3 and replies[3] == verification.TOO_MANY
    assert ChannelMessage.objects.filter(idempotency_key__startswith="chat-verify:").count() == 3


def test_codes_per_number_are_limited_whoever_asks(tenant):
    replies = [say(session_for(tenant, f"visitor{n:02d}" + "x" * 9), f"my number is {PATIENT}") for n in range(4)]
    assert replies[:3] == [verification.SENT["phone"]] * 3 and replies[3] == verification.TOO_MANY
    assert len(texted_codes(PATIENT)) == 3
    # another number is still served
    assert say(session_for(tenant, "other" + "y" * 12), f"my number is {STRANGER}") == verification.SENT["phone"]


def test_codes_per_tenant_are_limited(tenant, other_tenant, settings):
    settings.CHAT_VERIFY_CODES_PER_TENANT_HOUR = 2
    replies = [
        say(session_for(tenant, f"visitor{n:02d}" + "x" * 9), f"my number is 415 555 26{n:02d}") for n in range(3)
    ]
    assert replies == [verification.SENT["phone"]] * 2 + [verification.BUSY]
    assert ChannelMessage.objects.filter(tenant=tenant, idempotency_key__startswith="chat-verify:").count() == 2
    # the limit is per tenant
    assert say(session_for(other_tenant), f"my number is {PATIENT}") == verification.SENT["phone"]


def test_the_code_is_texted_but_never_written_to_a_transcript(tenant):
    customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",))
    say(session_for(tenant), f"my number is {PATIENT}")
    [code] = texted_codes(PATIENT)
    message = ChannelMessage.objects.get(recipient=PATIENT, idempotency_key__startswith="chat-verify:")
    turns = [t["text"] for t in message.interaction.transcript]
    assert code in message.body  # what the phone receives
    assert turns and all(code not in text for text in turns) and any("[code]" in text for text in turns)


def test_parallel_wrong_guesses_cannot_reset_the_try_count(tenant):
    """Several sockets guessing at once each read the pending code before any wrote it back: emulated by putting
    the entry back as it was before every guess. The tries still run out after MAX_TRIES."""
    from django.core.cache import cache

    customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",))
    session = session_for(tenant)
    say(session, f"my number is {PATIENT}")
    [code] = texted_codes(PATIENT)
    key = verification._key(tenant, session.visitor_key)
    as_read = cache.get(key)
    wrong = [f"{(int(code) + k) % 10**6:06d}" for k in range(1, verification.MAX_TRIES + 1)]
    for guess in wrong:
        cache.set(key, as_read, verification.CODE_TTL_SECONDS)  # a parallel request's stale write-back
        verification.challenge_answer(tenant=tenant, visitor_key=session.visitor_key, text=guess)
    cache.set(key, as_read, verification.CODE_TTL_SECONDS)
    answer = verification.challenge_answer(tenant=tenant, visitor_key=session.visitor_key, text=code)
    assert answer is not None and not answer.proven and "too many" in answer.reply


def test_a_patient_who_opted_out_of_memory_is_served_but_this_browser_is_not_linked_to_them(tenant):
    owner = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    owner.memory_opt_out = True
    owner.save(update_fields=["memory_opt_out"])
    session = session_for(tenant)
    say(session, "hola, necesito cambiar mi cita 🙏")
    say(session, f"soy yo, mi número es {PATIENT}", 2)
    reply = say(session, texted_codes(PATIENT)[0], 3)
    assert session.customer == owner  # proven: they act as themselves (their appointments)
    assert "Welcome back" not in reply
    # but the browser is not remembered: no cookie on their record, and the anonymous visitor was not folded in
    assert not CustomerIdentifier.objects.filter(customer=owner, kind="cookie").exists()
    assert CustomerIdentifier.objects.get(kind="cookie", value=visitor_key(VISITOR)).customer != owner
    assert session_for(tenant).customer != owner  # the same browser, next visit: a stranger again


def test_a_proven_email_gets_the_confirmation_of_a_booking_made_by_phone(tenant):
    """The brief's journey: booked by phone, the patient gives an email in chat and proves it; the confirmation
    email (with the .ics) goes out, so replying to it continues the conversation. Sent once per version."""
    from channels_app.chat.links import chat_link_token
    from conversations.appointments import appointment_book
    from tests.clock import local, next_weekday

    patient = customer_resolve(tenant=tenant, phone=PATIENT, verified_kinds=("phone",)).customer
    appt = appointment_book(
        tenant=tenant, customer=patient, starts_at=local(tenant, next_weekday(tenant, 1), 14), booked_via="voice"
    )
    session, _ = services.chat_hello(tenant=tenant, visitor=VISITOR, link=chat_link_token(customer=patient))
    assert session.customer == patient
    assert say(session, "you can also email me at Jane.Doe@Example.com") == verification.SENT["email"]
    assert not ChannelMessage.objects.filter(idempotency_key__endswith=":email").exists()
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    say(session, code, 2)
    email = ChannelMessage.objects.get(idempotency_key=f"appointment:{appt.pk}:v1:email")
    assert email.recipient == "jane.doe@example.com" and "Tuesday" in email.body and "2:00 PM" in email.body
    assert email.outbound_email.kind == "confirmation"
