"""Writes for identity: resolving a person from whatever identifiers a channel gives, opt-out, merge."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import django.dispatch
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from identity.models import (
    KIND_PRIORITY,
    Customer,
    CustomerIdentifier,
    CustomerMerge,
    IdentifierKind,
    IdentityConflict,
    Tenant,
)
from identity.normalize import normalize, normalize_phone

logger = logging.getLogger(__name__)

#: Sent inside the merge transaction before rows move, with ``survivor`` and ``merged`` customers, so apps
#: whose constraints involve the customer (e.g. "one open conversation per customer") can prepare.
customer_pre_merge = django.dispatch.Signal()


class MergeError(ValueError):
    """A merge that cannot be done: same customer, other tenant, or an already merged customer."""


@dataclass
class Resolution:
    """What :func:`customer_resolve` found: the customer, whether it was created, what was attached."""

    customer: Customer
    created: bool = False
    attached: list[CustomerIdentifier] = field(default_factory=list)
    conflicts: list[IdentityConflict] = field(default_factory=list)


def _candidates(tenant: Tenant, raw: dict[str, str | None]) -> list[tuple[str, str]]:
    out = []
    for kind in KIND_PRIORITY:
        value = normalize(kind, raw.get(kind), region=tenant.country)
        if value:
            out.append((kind.value, value))
    return out


def customer_resolve(
    *,
    tenant: Tenant,
    auth: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    cookie: str | None = None,
    display_name: str = "",
    verified_kinds: tuple[str, ...] = (),
) -> Resolution:
    """Return the tenant's customer for these identifiers, creating one when none matches.

    Priority is auth > phone > email > cookie: the highest-priority identifier already known decides who
    this is. Identifiers not yet known are attached to that customer. Identifiers that belong to a
    *different* customer are never moved: each becomes an open :class:`IdentityConflict` for an operator
    (admin merge action). A customer who opted out of cross-channel memory (``memory_opt_out``) gets no new
    identifiers attached. Junk and unparsable values are ignored. ``verified_kinds`` marks identifiers the
    channel has proven (e.g. ``("phone",)`` for an inbound SMS's ``From``).

    Raises ``ValueError`` if no usable identifier is given. Safe under concurrency: a race that inserts the
    same identifier twice is retried once against the winner's row.

    The identifiers are read (and locked) in the caller's transaction, or in one of its own, without a
    savepoint; only when something is to be written (a new customer or identifier, a name, a verification, a
    conflict) do the writes take one, the race being theirs. A returning customer whose identifiers are all
    known and settled (the usual inbound message) costs one statement.
    """
    candidates = _candidates(tenant, {"auth": auth, "phone": phone, "email": email, "cookie": cookie})
    if not candidates:
        raise ValueError("no usable identifier to resolve a customer")
    verified = set(verified_kinds)
    with transaction.atomic(savepoint=False):
        for attempt in range(3):
            known = _known_locked(tenant, candidates)
            owner = next((known[c].customer for c in candidates if c in known), None)
            if owner is not None and _settled(owner, known, candidates, display_name, verified):
                return Resolution(customer=owner)
            try:
                with transaction.atomic():
                    return _resolve_once(tenant, candidates, display_name, verified, known, owner)
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info("identity resolution raced; retrying", extra={"tenant": str(tenant.id)})
    raise AssertionError("unreachable")


def _known_locked(tenant, candidates) -> dict[tuple[str, str], CustomerIdentifier]:
    """The tenant's identifier rows among ``candidates`` (``(kind, value)`` pairs), keyed by them, with their
    customers; the identifier rows are locked ``FOR NO KEY UPDATE``."""
    query = None
    for kind, value in candidates:
        q = Q(kind=kind, value=value)
        query = q if query is None else query | q
    return {
        (ident.kind, ident.value): ident
        # the identifier rows only, and FOR NO KEY UPDATE: a plain FOR UPDATE here also locked the customer row
        # (joined) against the FOR KEY SHARE that every insert referencing the customer takes at commit, so this
        # request and a reply worker that had locked the conversation first deadlocked (lock order, issue 19)
        for ident in CustomerIdentifier.objects.select_for_update(of=("self",), no_key=True)
        .select_related("customer")
        .filter(query, tenant=tenant)
    }


def _settled(owner: Customer, known, candidates, display_name: str, verified_kinds: set[str]) -> bool:
    """True when :func:`_resolve_once` would write nothing: every candidate is known and ``owner``'s, verified
    if its kind is, and there is no display name to fill in (conservative: False sends it the usual way)."""
    if display_name and not owner.display_name:
        return False
    for candidate in candidates:
        ident = known.get(candidate)
        if ident is None or ident.customer_id != owner.id or (candidate[0] in verified_kinds and not ident.verified):
            return False
    return True


def _resolve_once(tenant, candidates, display_name, verified_kinds, known, owner) -> Resolution:
    """The writes of :func:`customer_resolve` given the ``known`` identifiers and their ``owner`` (None: a new
    customer)."""
    resolution = Resolution(customer=owner) if owner else None
    if owner is None:
        owner = Customer.objects.create(tenant=tenant, display_name=display_name[:200])
        resolution = Resolution(customer=owner, created=True)
    elif display_name and not owner.display_name:
        owner.display_name = display_name[:200]
        owner.save(update_fields=["display_name", "updated_at"])

    for kind, value in candidates:
        ident = known.get((kind, value))
        if ident is None and owner.memory_opt_out:
            continue  # opted out of cross-channel memory: no new phone, email or browser is linked to them
        if ident is None:
            resolution.attached.append(
                CustomerIdentifier.objects.create(
                    tenant=tenant, customer=owner, kind=kind, value=value, verified=kind in verified_kinds
                )
            )
        elif ident.customer_id != owner.id:
            conflict, _ = IdentityConflict.objects.get_or_create(
                tenant=tenant,
                kind=kind,
                value=value,
                resolved_customer=owner,
                other_customer=ident.customer,
                closed_at=None,
            )
            resolution.conflicts.append(conflict)
            logger.warning(
                "identity conflict: %s identifier belongs to another customer",
                kind,
                extra={"tenant": str(tenant.id), "resolved": str(owner.id), "other": str(ident.customer_id)},
            )
        elif kind in verified_kinds and not ident.verified:
            ident.verified = True
            ident.save(update_fields=["verified"])
    return resolution


def phone_set_opt_out(*, tenant: Tenant, phone: str, opted_out: bool, at: datetime | None = None) -> bool:
    """Record an SMS opt-out (STOP) or opt-in (START) for an E.164 phone of this tenant.

    Returns True if the stored state changed. The customer is resolved (created if new) so an opt-out from
    a stranger is still honoured. Keywords follow Twilio's "Advanced Opt-Out" defaults.
    """
    e164 = normalize_phone(phone, tenant.country)
    if not e164:
        return False
    resolution = customer_resolve(tenant=tenant, phone=e164, verified_kinds=("phone",))
    new_value = (at or timezone.now()) if opted_out else None
    with transaction.atomic():
        ident = CustomerIdentifier.objects.select_for_update().get(tenant=tenant, kind=IdentifierKind.PHONE, value=e164)
        if (ident.sms_opted_out_at is not None) == opted_out:
            return False
        ident.sms_opted_out_at = new_value
        ident.save(update_fields=["sms_opted_out_at"])
    logger.info("sms opt-%s recorded", "out" if opted_out else "in", extra={"customer": str(resolution.customer.id)})
    return True


def customer_merge(*, survivor: Customer, merged: Customer, performed_by=None) -> CustomerMerge:
    """Move everything of ``merged`` onto ``survivor`` in one transaction and audit it.

    Identifiers, conversations, interactions (``call_logs``), session state (with its conversation) and any
    other row that points at the merged customer move to the survivor; nothing is deleted: ``merged`` stays
    as a tombstone with ``merged_into`` set. Open conflicts between the two are closed. Raises
    :class:`MergeError` for the same customer, different tenants, or a customer already merged.
    """
    if survivor.pk == merged.pk:
        raise MergeError("choose two different customers")
    if survivor.tenant_id != merged.tenant_id:
        raise MergeError("customers belong to different tenants")
    with transaction.atomic():
        locked = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[survivor.pk, merged.pk])}
        survivor, merged = locked[survivor.pk], locked[merged.pk]
        if survivor.merged_into_id or merged.merged_into_id:
            raise MergeError("a customer in this merge was already merged")
        customer_pre_merge.send(sender=Customer, survivor=survivor, merged=merged)
        moved = {}
        skip = {
            (Customer, "merged_into"),
            (IdentityConflict, "resolved_customer"),
            (IdentityConflict, "other_customer"),
            (CustomerMerge, "survivor"),
            (CustomerMerge, "merged"),
        }
        for rel in Customer._meta.related_objects:
            if not (rel.one_to_many or rel.one_to_one) or (rel.related_model, rel.field.name) in skip:
                continue
            count = rel.related_model._base_manager.filter(**{rel.field.name: merged}).update(
                **{rel.field.name: survivor}
            )
            if count:
                moved[rel.related_model._meta.label] = count
        if not survivor.display_name and merged.display_name:
            survivor.display_name = merged.display_name
            survivor.save(update_fields=["display_name", "updated_at"])
        merged.merged_into = survivor
        merged.save(update_fields=["merged_into", "updated_at"])
        now = timezone.now()
        IdentityConflict.objects.filter(
            tenant_id=survivor.tenant_id,
            closed_at__isnull=True,
            resolved_customer__in=[survivor, merged],
            other_customer__in=[survivor, merged],
        ).update(closed_at=now, closed_note="merged")
        return CustomerMerge.objects.create(
            tenant_id=survivor.tenant_id, survivor=survivor, merged=merged, performed_by=performed_by, moved=moved
        )


LANGUAGES = ("en", "es")


def customer_set_language(*, customer: Customer, language: str) -> bool:
    """Remember ``language`` (``"en"`` | ``"es"``) as the customer's preferred language; True if it changed.
    Raises ``ValueError`` for another code."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    changed = bool(
        Customer.objects.filter(pk=customer.pk).exclude(preferred_language=language).update(preferred_language=language)
    )
    customer.preferred_language = language
    return changed


def customer_set_intake(
    *, customer: Customer, name: str | None = None, date_of_birth=None, visit_reason: str | None = None
) -> list[str]:
    """Store what the patient gave in their intake (only the fields passed); returns the fields written.
    ``name`` ≤ 200 characters, ``date_of_birth`` a ``date`` (encrypted at rest), ``visit_reason`` ≤ 500
    characters (encrypted at rest)."""
    fields = []
    if name is not None:
        customer.display_name, fields = name.strip()[:200], [*fields, "display_name"]
    if date_of_birth is not None:
        customer.date_of_birth, fields = date_of_birth, [*fields, "date_of_birth"]
    if visit_reason is not None:
        customer.visit_reason, fields = visit_reason.strip()[:500], [*fields, "visit_reason"]
    if fields:
        customer.save(update_fields=[*fields, "updated_at"])
    return fields
