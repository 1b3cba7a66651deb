"""The languages a call can be held in: the codes our speech-to-text (Deepgram nova-3 and
nova-2) accepts, the name the instructions give each ("Speak Spanish"), the Deepgram
models that understand English only, and a code's base language (its prompt folder).

One place for both, so work on per-language prompts extends this table. A code from
outside (the ``assistant.language`` attribute a dispatch rule or trunk sets) is used
only if it is exactly one of these, as Deepgram writes it.

Sources: Deepgram's "Models & Languages Overview" and its Nova-3 changelog entries
(2025-08 to 2026-03).
"""

from __future__ import annotations

import re

# Deepgram's language codes for nova-3 (monolingual and "multi") and nova-2, exactly as
# Deepgram writes them (case matters: "en-US", not "en-us").
STT_LANGUAGES: frozenset[str] = frozenset(
    {
        "multi",
        *("en", "en-US", "en-AU", "en-GB", "en-IN", "en-NZ"),
        *("es", "es-419"),
        *("fr", "fr-CA"),
        *("de", "de-CH"),
        *("pt", "pt-BR", "pt-PT"),
        *("nl", "nl-BE"),
        *("sv", "sv-SE"),
        *("da", "da-DK"),
        *("ko", "ko-KR"),
        *("th", "th-TH"),
        *("pa", "pa-IN"),
        *("zh", "zh-CN", "zh-Hans", "zh-TW", "zh-Hant", "zh-HK"),
        *("it", "tr", "no", "id", "bg", "cs", "fi", "hi", "hu", "ja", "pl", "ru", "uk", "vi"),
        *("ca", "et", "el", "lv", "lt", "ms", "ro", "sk"),
        *("be", "bn", "bs", "hr", "kn", "mk", "mr", "sr", "sl", "ta", "tl", "te", "ne"),
    }
)

# The name of each language (by its code before any "-"), for the instructions.
LANGUAGE_NAMES: dict[str, str] = {
    "multi": "the caller's language",
    "be": "Belarusian",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "bs": "Bosnian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fi": "Finnish",
    "fr": "French",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "kn": "Kannada",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mk": "Macedonian",
    "mr": "Marathi",
    "ms": "Malay",
    "ne": "Nepali",
    "nl": "Dutch",
    "no": "Norwegian",
    "pa": "Punjabi",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "ta": "Tamil",
    "te": "Telugu",
    "th": "Thai",
    "tl": "Tagalog",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}

# Deepgram models that transcribe English only: every specialised option of nova-2, and
# the phone-call, meeting and other specialised options of the legacy Nova, Enhanced and
# Base models. Each accepts only the codes in ENGLISH_ONLY_LANGUAGES (other English
# codes included: LiveKit's Deepgram plugin then swaps the model for nova-2-general).
# nova-3-medical is not here: Deepgram lists it as English-only, then added
# language=multi to it (changelog "Nova-3 Medical Multilingual").
# Sources: Deepgram's "Models & Languages Overview" (the Language column of its Nova-2,
# Nova, Enhanced and Base tables) and livekit-plugins-deepgram's stt._validate_model.
ENGLISH_ONLY_MODELS: frozenset[str] = frozenset(
    {
        *("nova-2-meeting", "nova-2-phonecall", "nova-2-voicemail", "nova-2-finance"),
        *("nova-2-conversationalai", "nova-2-video", "nova-2-medical", "nova-2-drivethru"),
        *("nova-2-automotive", "nova-2-atc"),
        *("nova-phonecall", "nova-medical"),
        *("enhanced-meeting", "enhanced-phonecall", "enhanced-finance"),
        *("base-meeting", "base-phonecall", "base-finance", "base-conversationalai"),
        *("base-voicemail", "base-video"),
        # the Base options as the deprecated tier syntax names them (tier=base, the default)
        *("meeting", "phonecall", "finance", "conversationalai", "voicemail", "video"),
    }
)
ENGLISH_ONLY_LANGUAGES: tuple[str, ...] = ("en", "en-US")


def base_language(code: str) -> str:
    """A language code's language without its region or script: "es-419" -> "es",
    "en-US" -> "en", "zh-Hant" -> "zh". The prompts are kept by this code
    (prompts/es/), and so are a destination's spoken names."""
    return code.split("-", 1)[0].lower()


_SUPPORTED = re.compile(
    "|".join(re.escape(code) for code in sorted(STT_LANGUAGES, key=len, reverse=True)),
    re.ASCII,
)


def is_supported(code: object) -> bool:
    """Whether ``code`` is, exactly, a language code the speech-to-text accepts."""
    return isinstance(code, str) and _SUPPORTED.fullmatch(code) is not None
