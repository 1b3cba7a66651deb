"""Whether the framework can play an audio file (the hold music of ``[transfer]``).

A file is decoded here as the framework will decode it during a call, up to its first
audio frame, so a file that would play as silence stops the worker at start-up instead.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

# How the framework's AudioStreamDecoder opens audio (livekit.agents.utils.codecs,
# which BackgroundAudioPlayer uses for a file): a stream it cannot seek, probed from its
# first bytes. A file that decodes only when seekable (an MP4 with its index at the end)
# would play as silence, so it is checked the same way.
_STREAMING_OPTIONS = {
    "probesize": "32",
    "analyzeduration": "0",
    "fflags": "nobuffer+flush_packets",
    "flags": "low_delay",
    "reorder_queue_size": "0",
    "max_delay": "0",
    "avioflags": "direct",
}


class _Unseekable(io.RawIOBase):
    def __init__(self, file: io.BufferedReader) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def audio_problem(path: Path) -> str | None:
    """Why the framework could not play ``path``, in the decoder's words, or None: it
    is decoded as the framework decodes it, up to the first audio frame."""
    import av  # only when a file is configured: it takes a while to import

    try:
        if path.stat().st_size == 0:
            return "the file is empty, not audio"
        with (
            path.open("rb") as file,
            av.open(
                _Unseekable(file), mode="r", buffer_size=256, options=_STREAMING_OPTIONS
            ) as container,
        ):
            if not container.streams.audio:
                found = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
                return f"not audio: the decoder found no audio stream in it (found: {found})"
            frame = next(container.decode(container.streams.audio[0]), None)
    except av.FFmpegError as e:
        why = f"not decodable audio: {e.strerror or e}"
        if path.suffix.lower() in (".m4a", ".mp4", ".mov"):
            why += (
                " (an MP4 file must have its index first: re-encode it with -movflags +faststart)"
            )
        return why
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    except Exception as e:  # any other complaint is still a configuration problem
        return f"not decodable audio: {e}"
    if frame is None:
        return "not decodable audio: it holds no audio frames"
    return None
