"""Appointment reminders (issue 15): per-tenant lead times and quiet hours, one row per reminder sent, replies.

``models``: :class:`ReminderSettings`, :class:`AppointmentReminder`. ``services``: which reminders are due,
recording them, the patient's answer (confirm / reschedule / cancel) and the no-show sweep. Sending is the
channels' job (``channels_app.reminders``): conversations never imports a channel.
"""
