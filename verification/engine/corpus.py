"""Folders of ``{label}_{speaker}_{index}.wav`` recordings -> browser features (no Django).

Used by ``manage.py train_ubm`` and ``manage.py evaluate``. Extraction is the Python port of the
browser pipeline (``features.wav_to_utterance``), so the engine sees what the API would receive.
An optional cache directory keeps the Meyda features of a corpus between runs (they depend only on
the audio and the feature version, not on any engine choice); it must live outside the repository.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.signal

from verification import features

from .evaluation import Recording, parse_name


def list_recordings(
    corpus: str | Path,
    *,
    speakers: Sequence[str] | None = None,
    exclude_speakers: Sequence[str] | None = None,
) -> list[Recording]:
    """Every ``*.wav`` of a folder (sorted by speaker, label, index), optionally a speaker subset.

    Raises ValueError for a missing folder, a badly named file, unknown speakers or an empty result.
    """
    folder = Path(corpus)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    recordings = [parse_name(p) for p in sorted(folder.glob("*.wav"))]
    known = {r.speaker for r in recordings}
    for name, chosen in (("--speakers", speakers), ("--exclude-speakers", exclude_speakers)):
        unknown = sorted(set(chosen or ()) - known)
        if unknown:
            raise ValueError(f"{name}: no recordings of speakers {unknown} in {folder}")
    if speakers:
        recordings = [r for r in recordings if r.speaker in set(speakers)]
    if exclude_speakers:
        recordings = [r for r in recordings if r.speaker not in set(exclude_speakers)]
    if not recordings:
        raise ValueError(f"{folder}: no recordings selected")
    recordings.sort(key=lambda r: (r.speaker, r.label, r.index))
    return recordings


def narrowband_utterance(path: str | Path) -> features.Utterance:
    """The features of a recording as an 8 kHz channel would deliver it (telephone-band headset,
    8 kHz microphone): resampled to 8 kHz and back to 16 kHz, nothing above 4 kHz."""
    signal, rate = features.read_wav(path)
    if rate > 8000:
        signal = features.resample_to_16k(signal, rate)
        signal = scipy.signal.resample_poly(signal, 1, 2).astype(np.float32)
        rate = 8000
    mel, rms = features.meyda_features(features.resample_to_16k(signal, rate))
    return features.Utterance(mel, rms)


def _cache_key(recordings: Sequence[Recording], narrowband: bool) -> str:
    h = hashlib.sha256(f"{features.FEATURE_VERSION}|narrowband={narrowband}".encode())
    for r in recordings:
        st = os.stat(r.path)
        h.update(f"{Path(r.path).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load_utterances(
    recordings: Sequence[Recording],
    *,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    narrowband: bool = False,
) -> list[features.Utterance]:
    """Browser features of every recording, in order (``digit`` left None); with ``narrowband``
    those of :func:`narrowband_utterance`.

    With ``cache_dir`` the features are read from / written to one npz per recording list.
    """
    report = progress or (lambda message: None)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"features-{_cache_key(recordings, narrowband)}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as npz:
                mel, rms, lengths = npz["mel"], npz["rms"], npz["lengths"]
            report(f"features of {len(recordings)} files read from cache {cache}")
            return _split(mel, rms, lengths)
    utts = []
    step = max(1, len(recordings) // 10)
    extract = narrowband_utterance if narrowband else features.wav_to_utterance
    what = "narrowband features" if narrowband else "features"
    for i, rec in enumerate(recordings, 1):
        utts.append(extract(rec.path))
        if i % step == 0 or i == len(recordings):
            report(f"{what}: {i}/{len(recordings)} files")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            mel=np.concatenate([u.mel_bands for u in utts]),
            rms=np.concatenate([u.rms for u in utts]),
            lengths=np.array([u.n_frames for u in utts], dtype=np.int64),
        )
        tmp.replace(cache)
    return utts


def _split(mel: np.ndarray, rms: np.ndarray, lengths: np.ndarray) -> list[features.Utterance]:
    bounds = np.cumsum(lengths)[:-1]
    return [
        features.Utterance(m, r)
        for m, r in zip(np.split(mel, bounds), np.split(rms, bounds), strict=True)
    ]
