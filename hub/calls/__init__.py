"""Live phone calls: the media-session port the transports implement (SIP, Twilio Media
Streams, WebRTC), telephone audio helpers, and the call flows that run over a session.

A live call is a media session, not store-and-forward: audio flows both ways in real time,
and only what the caller says (final transcripts), what is spoken to them, and the call's
steps are stored in the conversation and the event log.
"""
