"""Demo data of the email channel: the demo tenant's front-desk address (inbound by webhook; no IMAP)."""

from channels_app.models import EmailMailbox


def seed(tenant) -> dict:
    """Create ``frontdesk@<slug>.callsphere.localhost`` for ``tenant`` if it has no mailbox; return it."""
    mailbox = EmailMailbox.objects.filter(tenant=tenant).order_by("id").first()
    if mailbox is None:
        mailbox = EmailMailbox.objects.create(tenant=tenant, address=f"frontdesk@{tenant.slug}.callsphere.localhost")
    return {"email_address": mailbox.address}
