"""Channel webhooks and pages at the site root (the public contract in DESIGN.md)."""

from django.urls import include, path

from channels_app.chat import views as chat_views
from channels_app.sms import views as sms_views
from channels_app.surveys import survey_page
from channels_app.voice import views as voice_views

urlpatterns = [
    path("widget.js", chat_views.widget_js, name="chat-widget-js"),
    path("demo/", chat_views.demo_page, name="demo-clinic"),
    path("c/<str:token>", chat_views.chat_link, name="chat-link"),
    path("s/<str:token>/", survey_page, name="survey"),
    path("twilio/sms/", sms_views.sms_inbound, name="twilio-sms"),
    path("twilio/sms/status/", sms_views.sms_status, name="twilio-sms-status"),
    path("twilio/voice/", voice_views.voice_inbound, name="twilio-voice"),
    path("twilio/voice/status/", voice_views.voice_status, name="twilio-voice-status"),
    path("twilio/voice/gather/", voice_views.voice_gather, name="twilio-voice-gather"),
    path("twilio/voice/no-input/", voice_views.voice_no_input, name="twilio-voice-no-input"),
    path(
        "twilio/voice/callback/<int:callback_request_id>/answer/",
        voice_views.voice_callback_answer,
        name="twilio-voice-callback-answer",
    ),
    path("twilio/voice/dial-result/", voice_views.voice_dial_result, name="twilio-voice-dial-result"),
    path("twilio/voice/voicemail/", voice_views.voice_voicemail, name="twilio-voice-voicemail"),
    path("twilio/voice/voicemail/done/", voice_views.voice_voicemail_done, name="twilio-voice-voicemail-done"),
    path("twilio/voice/recording/", voice_views.voice_recording, name="twilio-voice-recording"),
    path("twilio/voice/transcription/", voice_views.voice_transcription, name="twilio-voice-transcription"),
    path("", include("channels_app.email.urls")),
]
