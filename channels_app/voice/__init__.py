"""The voice channel on Twilio: the VoiceAgent turn loop, call lifecycle, voicemail and outbound callbacks.

Routes (``channels_app/urls.py``), all signed Twilio webhooks:

- ``POST /twilio/voice/``: an inbound call → greeting + ``<Gather input="speech">``;
- ``POST /twilio/voice/gather/?turn=N``: the caller's speech for turn N → the engine's reply + next Gather;
- ``POST /twilio/voice/no-input/?n=K``: a Gather that heard nothing → re-prompt, then voicemail, then goodbye;
- ``POST /twilio/voice/status/``: call status callbacks (forward only; terminal statuses close the row);
- ``POST /twilio/voice/voicemail/`` and ``/voicemail/done/``: leave a message (``<Record>``);
- ``POST /twilio/voice/recording/`` and ``/transcription/``: the recording status and transcription callbacks.
"""
