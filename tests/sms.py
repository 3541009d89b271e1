"""Twilio's inbound SMS webhook parameters for a test tenant, and the check that a refused request wrote nothing."""

from channels_app import twilio_payloads
from conversations.models import ChannelMessage, Interaction
from identity.models import Customer

PATIENT = "+15551230001"


def inbound(tenant, body="Hello", sid=None, from_=PATIENT):
    return twilio_payloads.inbound_sms(
        account_sid=tenant.twilio_account_sid, from_=from_, to="+15550100001", body=body, message_sid=sid
    )


def nothing_written():
    return not (Interaction.objects.exists() or Customer.objects.exists() or ChannelMessage.objects.exists())
