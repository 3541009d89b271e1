"""The email channel: one ingest service for IMAP polling and inbound webhooks, threading, the
EmailTriageAgent, threaded replies and confirmations with an .ics file.

Modules: :mod:`parse` (RFC 5322 → what we need), :mod:`reply_text` (quoted history and signatures removed),
:mod:`threading` (tenant, conversation, reply address), :mod:`ingest` (the one ingest service), :mod:`triage`
(the EmailTriageAgent), :mod:`outbound` (prepare and deliver), :mod:`confirmations` (appointment emails),
:mod:`imap` (the poller), :mod:`views` / :mod:`receivers` (webhooks), :mod:`tasks`.
"""
