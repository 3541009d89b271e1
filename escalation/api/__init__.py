"""DRF endpoints of escalation (mounted under ``/api/v1/escalation/``)."""
