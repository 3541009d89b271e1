"""TwiML documents of the voice agent, built with the twilio library's ``VoiceResponse``.

Verbs and attributes per Twilio's TwiML reference: ``<Gather>`` (https://www.twilio.com/docs/voice/twiml/gather:
``input="speech"``, ``speechTimeout="auto"``, ``bargeIn`` — a nested ``<Say>`` stops as soon as the caller
speaks), ``<Record>`` (https://www.twilio.com/docs/voice/twiml/record: ``recordingStatusCallback``,
``transcribe`` / ``transcribeCallback``; Twilio transcribes recordings of at most 120 s), ``<Dial>``
(https://www.twilio.com/docs/voice/twiml/dial: ``action`` receives ``DialCallStatus`` when the dialled call ends,
``timeout`` seconds of ringing, ``callerId``), ``<Redirect>``, ``<Pause>``, ``<Say>``, ``<Hangup>``. Every URL is
absolute (``settings.PUBLIC_BASE_URL`` + path) because Twilio signs the exact URL it requests and we validate
against the same base.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from twilio.twiml.voice_response import Gather, VoiceResponse

GATHER_PATH = "/twilio/voice/gather/"
NO_INPUT_PATH = "/twilio/voice/no-input/"
STATUS_PATH = "/twilio/voice/status/"
VOICEMAIL_PATH = "/twilio/voice/voicemail/"
VOICEMAIL_DONE_PATH = "/twilio/voice/voicemail/done/"
RECORDING_PATH = "/twilio/voice/recording/"
TRANSCRIPTION_PATH = "/twilio/voice/transcription/"
DIAL_RESULT_PATH = "/twilio/voice/dial-result/"

#: seconds of silence before a Gather gives up (Twilio's ``timeout``) and the longest voicemail (seconds)
GATHER_TIMEOUT = 6
VOICEMAIL_MAX_SECONDS = 120
#: seconds the front desk rings before a transfer counts as unanswered (``<Dial timeout>``)
DIAL_TIMEOUT = 20
#: seconds of silence before a replayed Gather action asks again whether its turn has been answered
HOLD_SECONDS = 2


def url(path: str, **query) -> str:
    """Absolute public URL of one of our webhook paths, with an optional query string."""
    return settings.PUBLIC_BASE_URL + path + (f"?{urlencode(query)}" if query else "")


def _say(target, text: str) -> None:
    target.say(text, voice=settings.VOICE_TTS_VOICE, language=settings.VOICE_LANGUAGE)


def gather(text: str, *, turn: int, no_input: int = 0) -> str:
    """Say ``text`` (interruptible) and listen for turn ``turn``; silence redirects to the no-input route.

    ``turn`` numbers the caller's answers (1, 2, …) so a replayed Gather action is recognised; ``no_input``
    counts consecutive silent prompts so far.
    """
    response = VoiceResponse()
    listen = Gather(
        input="speech",
        action=url(GATHER_PATH, turn=turn),
        method="POST",
        speech_timeout="auto",
        timeout=GATHER_TIMEOUT,
        barge_in=True,
        language=settings.VOICE_LANGUAGE,
        action_on_empty_result=False,
        profanity_filter=False,
    )
    _say(listen, text)
    response.append(listen)
    response.redirect(url(NO_INPUT_PATH, turn=turn, n=no_input + 1), method="POST")
    return str(response)


def hold(*, turn: int) -> str:
    """Keep the caller on the line while the answer to turn ``turn`` is still being worked out: a
    :data:`HOLD_SECONDS` ``<Pause>``, then a ``<Redirect>`` (POST) to the same Gather action URL (``?turn=N``).

    Twilio's redirected request carries the call's parameters but no ``SpeechResult``; the Gather route answers
    it with the stored reply once the turn is done, or with this document again.
    """
    response = VoiceResponse()
    response.pause(length=HOLD_SECONDS)
    response.redirect(url(GATHER_PATH, turn=turn), method="POST")
    return str(response)


def goodbye(text: str) -> str:
    """Say ``text`` and hang up."""
    response = VoiceResponse()
    _say(response, text)
    response.hangup()
    return str(response)


def dial(text: str, *, number: str, caller_id: str) -> str:
    """Say ``text`` and connect the caller to ``number`` (E.164), showing ``caller_id`` (our Twilio number, E.164).

    When the dialled leg ends (answered and hung up, busy, no answer within :data:`DIAL_TIMEOUT` s, failed,
    cancelled) Twilio posts ``DialCallStatus`` to ``/twilio/voice/dial-result/`` and runs the TwiML it answers.
    """
    response = VoiceResponse()
    _say(response, text)
    response.dial(number, action=url(DIAL_RESULT_PATH), method="POST", timeout=DIAL_TIMEOUT, caller_id=caller_id)
    return str(response)


def hangup() -> str:
    """Hang up without a word."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def voicemail(text: str, *, transcribe: bool) -> str:
    """Say ``text``, then record a message after the beep (``#`` or silence ends it).

    The recording status callback (``completed`` / ``absent``) goes to ``/twilio/voice/recording/``; with
    ``transcribe`` Twilio also posts its transcription to ``/twilio/voice/transcription/``. If nothing was
    recorded Twilio skips the action and runs the goodbye that follows.
    """
    response = VoiceResponse()
    _say(response, text)
    kwargs = {}
    if transcribe:
        kwargs = {"transcribe": True, "transcribe_callback": url(TRANSCRIPTION_PATH)}
    response.record(
        action=url(VOICEMAIL_DONE_PATH),
        method="POST",
        max_length=VOICEMAIL_MAX_SECONDS,
        timeout=5,
        finish_on_key="#",
        play_beep=True,
        trim="trim-silence",
        recording_status_callback=url(RECORDING_PATH),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
        **kwargs,
    )
    _say(response, "I didn't hear a message. Goodbye.")
    response.hangup()
    return str(response)
