"""One client module per CRM, picked by ``CrmConnection.provider``.

Each module offers ``<Name>Client(...)`` (see :class:`crm.clients.base.CrmClient`), ``refresh(...)`` and
``exchange_code(...)``; :func:`client_for` and :func:`refresh_tokens` hide the differences (instance URLs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm.clients.base import CrmClient, TokenSet

if TYPE_CHECKING:
    from crm.models import CrmConnection


def client_for(connection: CrmConnection) -> CrmClient:
    """A client for ``connection`` with its current access token."""
    if connection.provider == "hubspot":
        from crm.clients.hubspot import HubSpotClient

        return HubSpotClient(access_token=connection.access_token)
    if connection.provider == "salesforce":
        from crm.clients.salesforce import SalesforceClient

        return SalesforceClient(access_token=connection.access_token, instance_url=connection.instance_url)
    if connection.provider == "zoho":
        from crm.clients.zoho import ZohoClient

        return ZohoClient(access_token=connection.access_token, api_domain=connection.instance_url)
    raise ValueError(f"no CRM client for provider {connection.provider!r}")


def refresh_tokens(connection: CrmConnection) -> TokenSet:
    """A new access token for ``connection`` (raises ``CrmAuthRevoked`` when the refresh token is refused)."""
    if connection.provider == "hubspot":
        from crm.clients import hubspot

        return hubspot.refresh(refresh_token=connection.refresh_token)
    if connection.provider == "salesforce":
        from crm.clients import salesforce

        return salesforce.refresh(refresh_token=connection.refresh_token)
    if connection.provider == "zoho":
        from crm.clients import zoho

        return zoho.refresh(refresh_token=connection.refresh_token, accounts_url=connection.accounts_url)
    raise ValueError(f"no CRM client for provider {connection.provider!r}")
