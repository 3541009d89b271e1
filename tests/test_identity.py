"""Identity resolution: normalisation, priority, conflicts (never a silent merge), audited merges."""

import pytest
from django.utils import timezone

from conversations import selectors, services
from conversations.models import Conversation, Interaction, SessionState
from identity.models import Customer, CustomerIdentifier, CustomerMerge, IdentityConflict
from identity.normalize import normalize_email, normalize_phone
from identity.services import MergeError, customer_merge, customer_resolve


@pytest.mark.parametrize(
    "raw,region,expected",
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("0000000000", "US", None),
        ("anonymous", "US", None),
        ("+266696687", "US", None),
        ("12", "US", None),
        (None, "US", None),
    ],
)
def test_normalize_phone(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("  Ana.Lopez@Example.COM ", "ana.lopez@example.com"),
        ("null", None),
        ("not-an-email", None),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.django_db
def test_resolve_creates_then_finds_by_any_identifier(tenant):
    first = customer_resolve(tenant=tenant, phone="(415) 555-2671", verified_kinds=("phone",))
    assert first.created
    second = customer_resolve(tenant=tenant, phone="+14155552671", email="Ana@Example.com")
    assert not second.created and second.customer == first.customer
    assert [i.kind for i in second.attached] == ["email"]
    third = customer_resolve(tenant=tenant, email="ana@example.com", cookie="visitor-1")
    assert third.customer == first.customer
    assert set(CustomerIdentifier.objects.filter(customer=first.customer).values_list("kind", flat=True)) == {
        "phone",
        "email",
        "cookie",
    }


@pytest.mark.django_db
def test_resolution_is_per_tenant(tenant, other_tenant):
    a = customer_resolve(tenant=tenant, phone="+14155552671").customer
    b = customer_resolve(tenant=other_tenant, phone="+14155552671").customer
    assert a != b and a.tenant == tenant and b.tenant == other_tenant


@pytest.mark.django_db
def test_junk_only_is_rejected(tenant):
    with pytest.raises(ValueError):
        customer_resolve(tenant=tenant, phone="0000000000", email="null", cookie="undefined")
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_conflict_resolves_by_priority_and_never_merges_silently(tenant):
    by_phone = customer_resolve(tenant=tenant, phone="+14155552671").customer
    by_email = customer_resolve(tenant=tenant, email="ana@example.com").customer
    result = customer_resolve(tenant=tenant, phone="+14155552671", email="ana@example.com")
    assert result.customer == by_phone  # phone outranks email
    conflict = IdentityConflict.objects.get()
    assert (conflict.kind, conflict.resolved_customer, conflict.other_customer) == ("email", by_phone, by_email)
    # the email still belongs to its original owner; both customers still exist
    assert CustomerIdentifier.objects.get(kind="email").customer == by_email
    assert Customer.objects.count() == 2
    customer_resolve(tenant=tenant, phone="+14155552671", email="ana@example.com")
    assert IdentityConflict.objects.count() == 1  # recorded once while open


@pytest.mark.django_db
def test_auth_outranks_phone(tenant):
    by_phone = customer_resolve(tenant=tenant, phone="+14155552671").customer
    by_auth = customer_resolve(tenant=tenant, auth="user-42").customer
    assert customer_resolve(tenant=tenant, auth="user-42", phone="+14155552671").customer == by_auth
    assert IdentityConflict.objects.get().other_customer == by_phone


@pytest.mark.django_db
def test_merge_moves_history_and_keeps_a_tombstone(tenant, django_user_model):
    keep = customer_resolve(tenant=tenant, phone="+14155552671").customer
    fold = customer_resolve(tenant=tenant, email="ana@example.com").customer
    customer_resolve(tenant=tenant, phone="+14155552671", email="ana@example.com")
    keep_row, _ = services.session_open(tenant=tenant, customer=keep, channel="sms")
    fold_row, _ = services.session_open(tenant=tenant, customer=fold, channel="email")
    services.interaction_append_turn(interaction=fold_row, role="customer", text="hello by email")
    services.state_set(conversation=fold_row.conversation, key="pending_date", value="2026-11-24")
    operator = django_user_model.objects.create_user("op", password="x")

    audit = customer_merge(survivor=keep, merged=fold, performed_by=operator)

    assert set(Interaction.objects.values_list("customer", flat=True)) == {keep.pk}
    assert set(Conversation.objects.values_list("customer", flat=True)) == {keep.pk}
    assert set(CustomerIdentifier.objects.values_list("customer", flat=True)) == {keep.pk}
    assert Conversation.objects.filter(customer=keep, status="open").count() == 1  # constraint kept
    assert SessionState.objects.get().value == "2026-11-24"  # state moved with its conversation
    fold.refresh_from_db()
    assert fold.merged_into == keep  # tombstone, not deleted
    assert audit.performed_by == operator and audit.moved["identity.CustomerIdentifier"] == 1
    assert CustomerMerge.objects.count() == 1
    assert IdentityConflict.objects.get().closed_at is not None
    assert customer_resolve(tenant=tenant, email="ana@example.com").customer == keep
    assert Interaction.objects.filter(pk=fold_row.pk, transcript__0__text="hello by email").exists()


@pytest.mark.django_db
def test_merge_refuses_across_tenants_and_twice(tenant, other_tenant):
    a = customer_resolve(tenant=tenant, phone="+14155552671").customer
    b = customer_resolve(tenant=other_tenant, phone="+14155552671").customer
    with pytest.raises(MergeError):
        customer_merge(survivor=a, merged=b)
    c = customer_resolve(tenant=tenant, phone="+14155552672").customer
    customer_merge(survivor=a, merged=c)
    with pytest.raises(MergeError):
        customer_merge(survivor=a, merged=c)


@pytest.mark.django_db
def test_expired_state_is_never_read(tenant):
    customer = customer_resolve(tenant=tenant, phone="+14155552671").customer
    row, _ = services.session_open(tenant=tenant, customer=customer, channel="sms")
    past = timezone.now() - tenant.state_ttl - timezone.timedelta(seconds=1)
    services.state_set(conversation=row.conversation, key="old", value=1, at=past)
    services.state_set(conversation=row.conversation, key="fresh", value=2)
    assert selectors.state_get_all(conversation=row.conversation) == {"fresh": 2}


@pytest.mark.django_db(transaction=True)
def test_resolving_a_texter_does_not_lock_their_customer_row_against_references(tenant):
    """An inbound SMS resolves the sender inside the webhook's transaction; a reply worker inserting rows that
    reference the customer (FOR KEY SHARE at commit) must not wait on it, or the two deadlock (issue 19)."""
    import threading

    from django.db import connection, connections, transaction
    from django.db.utils import OperationalError

    customer = customer_resolve(tenant=tenant, phone="(555) 123-0001", verified_kinds=("phone",)).customer
    resolved, release, outcome = threading.Event(), threading.Event(), {}

    def webhook() -> None:
        try:
            with transaction.atomic():
                customer_resolve(tenant=tenant, phone="+1 555 123 0001", verified_kinds=("phone",))
                resolved.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=webhook)
    thread.start()
    try:
        assert resolved.wait(10)
        with transaction.atomic(), connection.cursor() as cursor:
            try:
                cursor.execute("SELECT 1 FROM identity_customer WHERE id = %s FOR KEY SHARE NOWAIT", [customer.pk])
                outcome["locked"] = False
            except OperationalError:
                outcome["locked"] = True
    finally:
        release.set()
        thread.join(10)
    assert outcome == {"locked": False}


@pytest.mark.django_db
def test_a_returning_texter_is_resolved_in_one_statement_and_unsettled_ones_still_written(
    tenant, django_assert_num_queries
):
    from django.db import transaction

    lucia = customer_resolve(tenant=tenant, phone="(305) 555-0142", verified_kinds=("phone",)).customer
    with transaction.atomic(), django_assert_num_queries(1):  # the locked read, no savepoint
        assert customer_resolve(tenant=tenant, phone="+1 305 555 0142", verified_kinds=("phone",)).customer == lucia

    # known but not yet proven, or nameless: the writes still happen
    chat = customer_resolve(tenant=tenant, cookie="visitor-ñandú-7").customer
    again = customer_resolve(
        tenant=tenant, cookie="visitor-ñandú-7", display_name="Lucía O’Brien", verified_kinds=("cookie",)
    )
    assert again.customer == chat and not again.created
    chat.refresh_from_db()
    assert chat.display_name == "Lucía O’Brien"
    assert CustomerIdentifier.objects.get(customer=chat, kind="cookie").verified


@pytest.mark.django_db
def test_an_identifier_inserted_by_a_racing_request_is_retried_inside_the_callers_transaction(tenant, monkeypatch):
    """The read saw no identifier, another request inserted it before our insert: the writes roll back to their
    savepoint, the identifiers are read again and the winner's customer is returned; the caller's transaction
    goes on."""
    from django.db import transaction

    from identity import services as identity_services

    winner = customer_resolve(tenant=tenant, phone="+13055550199").customer
    real, reads = identity_services._known_locked, []

    def stale_first(tenant, candidates):
        reads.append(1)
        return {} if len(reads) == 1 else real(tenant, candidates)

    monkeypatch.setattr(identity_services, "_known_locked", stale_first)
    with transaction.atomic():
        result = customer_resolve(tenant=tenant, phone="305-555-0199")
        assert Customer.objects.filter(tenant=tenant).count() == 1  # the transaction is still usable
    assert len(reads) == 2 and result.customer == winner and not result.created
