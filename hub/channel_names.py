"""Channel names and what each kind of channel implies, in one place.

Pure (no imports): the routing policy's default capacity costs, the bot runner's reading of
phone-number identities and the bot's answer length all read these sets, so a new channel is
classified once. Plugins (bot/) may import it like `hub.model`.
"""

from __future__ import annotations

from collections.abc import Mapping

VOICE = "voice"  # live calls (SIP, Twilio Media Streams, WebRTC): channels.phone
WEBCHAT = "webchat"
TELEGRAM = "telegram"
EMAIL = "email"
FAX = "fax"

# Channels whose address is a phone number (the bot need not ask for one).
PHONE_NUMBER_CHANNELS = frozenset({VOICE, "phone", "sms", FAX})
# Where a message is heard, not read: the article's short answer alone (no links).
SPOKEN_CHANNELS = frozenset({VOICE, "phone"})
# Where a message should be short: the short answer and a link.
SMALL_CHANNELS = frozenset({WEBCHAT, TELEGRAM, VOICE, "phone", "sms"})
# Where the whole article is welcome.
FULL_CHANNELS = frozenset({EMAIL, FAX})
# Share of an agent's capacity budget (100) one conversation takes: a call takes it all.
DEFAULT_COSTS: Mapping[str, int] = {VOICE: 100, WEBCHAT: 35, TELEGRAM: 35, EMAIL: 20}
