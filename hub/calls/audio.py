"""Telephone audio at the transports' edges: G.711 μ-law and sample-rate conversion.

Pure functions over bytes of 16-bit signed little-endian mono PCM. μ-law follows ITU-T G.711
(the segment/bias form every PBX and Twilio use); numpy tables keep a 20 ms frame at a few
microseconds. Resampling uses libsoxr (python-soxr), the resampler SoX and ffmpeg use, rather
than a hand-written filter.
"""

from __future__ import annotations

import numpy as np
import soxr

_BIAS = 0x84
_CLIP = 32635


def _decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype("<i2")


def _encode_table() -> np.ndarray:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


_ULAW_TO_PCM = _decode_table()
_PCM_TO_ULAW = _encode_table()  # indexed by sample + 32768


def ulaw_to_pcm(data: bytes) -> bytes:
    """G.711 μ-law bytes (one per sample) to 16-bit PCM."""
    return _ULAW_TO_PCM[np.frombuffer(data, dtype=np.uint8)].tobytes()


def pcm_to_ulaw(pcm: bytes) -> bytes:
    """16-bit PCM to G.711 μ-law; a trailing odd byte is dropped."""
    samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2").astype(np.int32)
    return _PCM_TO_ULAW[samples + 32768].tobytes()


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """16-bit PCM at `from_rate` as 16-bit PCM at `to_rate` (whole buffers, e.g. a prompt;
    a stream of frames keeps one `soxr.ResampleStream` instead)."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
    return np.asarray(soxr.resample(samples, from_rate, to_rate), dtype="<i2").tobytes()


def duration_s(pcm: bytes, sample_rate: int) -> float:
    """How long `pcm` plays."""
    return len(pcm) / 2 / sample_rate
