"""Offline speech for the voice channels: Vosk recognition and pyttsx3/espeak-ng synthesis.

- `VoskSpeechToText` (`SpeechToText`): whole recordings (Telegram voice notes).
- `VoskLiveSpeech` (`LiveSpeechToText`): live calls, streaming, with voice-activity detection.
- `Pyttsx3Speech` (`TextToSpeech`): prompts and answers spoken into calls.
- `install_model`: `omnihub speech install` (a Vosk model zip, unpacked and verified).

Every Vosk model is loaded once per process and shared (`channels.speech.models`).
"""

from channels.speech.live import VoskLiveSpeech, VoskStream
from channels.speech.models import load_model, packaged_model_path
from channels.speech.synthesis import Pyttsx3Speech, SynthesisError
from channels.speech.transcribe import VoskSpeechToText, decode_pcm
from channels.speech.vad import Endpointing

__all__ = [
    "Endpointing",
    "Pyttsx3Speech",
    "SynthesisError",
    "VoskLiveSpeech",
    "VoskSpeechToText",
    "VoskStream",
    "decode_pcm",
    "load_model",
    "packaged_model_path",
]
