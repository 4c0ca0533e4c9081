"""Model blobs: versioned ``np.savez`` bytes, loaded with ``allow_pickle=False`` and validated.

A blob is an uncompressed npz archive of plain numeric arrays plus 0-d unicode strings (JSON for
dicts). Loading never unpickles: object arrays and pickle streams are refused, and every array is
checked for dtype, shape and finiteness before a model object is built.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict

import numpy as np

from verification.features import CepstraConfig

from .model import BackgroundModel, EngineConfig, SpeakerModel

FORMAT_VERSION = 1
KIND_BACKGROUND = "speakerauth.background_model"
KIND_SPEAKER = "speakerauth.speaker_model"


class ModelFormatError(ValueError):
    """A model blob that is not one this engine wrote (corrupt, wrong kind, pickle, bad arrays)."""


def _text(value: str) -> np.ndarray:
    return np.array(str(value), dtype=np.str_)


def _save(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def _open(
    data: bytes, kind: str, expected: set[str], optional: frozenset[str] = frozenset()
) -> dict[str, np.ndarray]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ModelFormatError(f"expected model bytes, got {type(data).__name__}")
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ModelFormatError("not an npz archive")
            arrays = {name: npz[name] for name in npz.files}
    except ModelFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFormatError(f"unreadable model blob: {exc}") from exc
    meta = {"kind", "format_version"}
    if not meta <= arrays.keys():
        raise ModelFormatError("model blob lacks kind/format_version")
    found_kind = _str(arrays, "kind")
    if found_kind != kind:
        raise ModelFormatError(f"expected a {kind} blob, got {found_kind!r}")
    version = _int(arrays, "format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"model format version {version} is not supported (this engine reads {FORMAT_VERSION})"
        )
    names = set(arrays) - meta
    if not expected <= names <= expected | optional:
        raise ModelFormatError(
            f"model blob fields {sorted(names)} differ from the expected {sorted(expected)}"
        )
    return arrays


def _str(arrays: dict[str, np.ndarray], name: str) -> str:
    a = arrays[name]
    if a.dtype.kind != "U" or a.shape != ():
        raise ModelFormatError(f"{name}: expected a text scalar, got {a.dtype} {a.shape}")
    return str(a[()])


def _json(arrays: dict[str, np.ndarray], name: str) -> dict:
    try:
        value = json.loads(_str(arrays, name))
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{name}: invalid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ModelFormatError(f"{name}: expected a JSON object")
    return value


def _int(arrays: dict[str, np.ndarray], name: str) -> int:
    a = arrays[name]
    if a.dtype.kind not in "iu" or a.shape != ():
        raise ModelFormatError(f"{name}: expected an integer scalar, got {a.dtype} {a.shape}")
    return int(a)


def _float(arrays: dict[str, np.ndarray], name: str) -> float:
    a = arrays[name]
    if a.dtype.kind != "f" or a.shape != () or not np.isfinite(a):
        raise ModelFormatError(f"{name}: expected a finite float scalar, got {a.dtype} {a.shape}")
    return float(a)


def _floats(arrays: dict[str, np.ndarray], name: str, shape: tuple, dtype) -> np.ndarray:
    """A finite float array of the given shape (None = any size) cast to dtype."""
    a = arrays[name]
    if a.dtype.kind != "f":
        raise ModelFormatError(f"{name}: expected floats, got {a.dtype}")
    if a.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, a.shape, strict=True)
    ):
        raise ModelFormatError(f"{name}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ModelFormatError(f"{name}: contains NaN or infinity")
    return np.ascontiguousarray(a, dtype=dtype)


def _ints(arrays: dict[str, np.ndarray], name: str, size: int | None = None) -> np.ndarray:
    a = arrays[name]
    if a.dtype.kind not in "iu" or a.ndim != 1 or (size is not None and a.shape[0] != size):
        raise ModelFormatError(f"{name}: expected a 1-d integer array, got {a.dtype} {a.shape}")
    return a.astype(np.int64)


def dump_background_model(ubm: BackgroundModel) -> bytes:
    """BackgroundModel -> npz bytes."""
    return _save(
        {
            "kind": _text(KIND_BACKGROUND),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "weights": np.asarray(ubm.weights, dtype=np.float64),
            "means": np.asarray(ubm.means, dtype=np.float64),
            "variances": np.asarray(ubm.variances, dtype=np.float64),
            "threshold": np.array(ubm.threshold, dtype=np.float64),
            "version": _text(ubm.version),
            "feature_version": _text(ubm.feature_version),
            "provenance": _text(json.dumps(ubm.provenance, sort_keys=True)),
            "config": _text(json.dumps(ubm.config.to_dict(), sort_keys=True)),
            "cepstra_config": _text(json.dumps(asdict(ubm.cepstra_config), sort_keys=True)),
            # float16 halves the shipped file; train.build_cohort rounds the same way.
            "cohort_frames": np.asarray(ubm.cohort_frames, dtype=np.float16),
            "cohort_lengths": np.asarray(ubm.cohort_lengths, dtype=np.int64),
            **(
                {"cohort_shifts": np.asarray(ubm.cohort_shifts, dtype=np.float16)}
                if ubm.cohort_shifts.size
                else {}
            ),
        }
    )


_BACKGROUND_FIELDS = {
    "weights", "means", "variances", "threshold", "version", "feature_version", "provenance",
    "config", "cepstra_config", "cohort_frames", "cohort_lengths",
}  # fmt: skip
# AS-norm's cohort speaker models: absent from background models written before them.
_BACKGROUND_COHORT_MODELS = frozenset({"cohort_shifts"})


def load_background_model(data: bytes) -> BackgroundModel:
    """npz bytes -> BackgroundModel, or ModelFormatError saying what is wrong."""
    a = _open(data, KIND_BACKGROUND, _BACKGROUND_FIELDS, _BACKGROUND_COHORT_MODELS)
    weights = _floats(a, "weights", (None,), np.float64)
    c = weights.shape[0]
    means = _floats(a, "means", (c, None), np.float64)
    d = means.shape[1]
    variances = _floats(a, "variances", (c, d), np.float64)
    if c == 0 or d == 0:
        raise ModelFormatError("background model has no components or no dimensions")
    if np.any(weights <= 0) or abs(weights.sum() - 1.0) > 1e-6:
        raise ModelFormatError("weights must be positive and sum to 1")
    if np.any(variances <= 0):
        raise ModelFormatError("variances must be positive")
    lengths = _ints(a, "cohort_lengths")
    frames = a["cohort_frames"]
    cohort_shape = (int(lengths.sum()), d) if lengths.size else (0, None)
    cohort = _floats(a, "cohort_frames", cohort_shape, np.float32) if frames.size else frames
    if frames.size == 0 and lengths.size:
        raise ModelFormatError("cohort_lengths given without cohort_frames")
    if np.any(lengths <= 0):
        raise ModelFormatError("cohort_lengths must be positive")
    shifts = np.zeros((0, c, d), np.float32)
    if "cohort_shifts" in a:
        shifts = _floats(a, "cohort_shifts", (None, c, d), np.float32)
    try:
        config = EngineConfig.from_dict(_json(a, "config"))
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"config: {exc}") from exc
    try:
        cepstra_config = CepstraConfig(**_json(a, "cepstra_config"))
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"cepstra_config: {exc}") from exc
    if cepstra_config.n_dims != d:
        raise ModelFormatError(
            f"cepstra_config yields {cepstra_config.n_dims} dims, the model has {d}"
        )
    try:
        return BackgroundModel(
            weights=weights,
            means=means,
            variances=variances,
            threshold=_float(a, "threshold"),
            version=_str(a, "version"),
            feature_version=_str(a, "feature_version"),
            provenance=_json(a, "provenance"),
            config=config,
            cepstra_config=cepstra_config,
            cohort_frames=np.asarray(cohort, dtype=np.float32),
            cohort_lengths=lengths,
            cohort_shifts=shifts,
        )
    except ValueError as exc:  # BackgroundModel's own consistency checks
        raise ModelFormatError(str(exc)) from exc


_SPEAKER_FIELDS = {
    "means", "ubm_version", "n_utterances", "template_frames", "template_lengths",
    "template_digits", "znorm_mean", "znorm_std",
}  # fmt: skip
# Enrolment statistics (``SpeakerModel.stat_counts``): absent from models written before them.
_SPEAKER_STATISTICS = frozenset({"stat_counts"})


def dump_speaker_model(model: SpeakerModel) -> bytes:
    """SpeakerModel -> npz bytes."""
    return _save(
        {
            "kind": _text(KIND_SPEAKER),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "means": np.asarray(model.means, dtype=np.float64),
            "ubm_version": _text(model.ubm_version),
            "n_utterances": np.array(model.n_utterances, dtype=np.int64),
            "template_frames": np.asarray(model.template_frames, dtype=np.float32),
            "template_lengths": np.asarray(model.template_lengths, dtype=np.int64),
            "template_digits": np.asarray(model.template_digits, dtype=np.int64),
            "znorm_mean": np.array(model.znorm_mean, dtype=np.float64),
            "znorm_std": np.array(model.znorm_std, dtype=np.float64),
            **(
                {"stat_counts": np.asarray(model.stat_counts, dtype=np.float64)}
                if model.has_statistics
                else {}
            ),
        }
    )


def load_speaker_model(data: bytes) -> SpeakerModel:
    """npz bytes -> SpeakerModel, or ModelFormatError saying what is wrong."""
    a = _open(data, KIND_SPEAKER, _SPEAKER_FIELDS, _SPEAKER_STATISTICS)
    means = _floats(a, "means", (None, None), np.float64)
    statistics = {}
    if "stat_counts" in a:
        counts = _floats(a, "stat_counts", (means.shape[0],), np.float64)
        if np.any(counts < 0):
            raise ModelFormatError("stat_counts must not be negative")
        statistics = {"stat_counts": counts}
    lengths = _ints(a, "template_lengths")
    digits = _ints(a, "template_digits", lengths.shape[0])
    if lengths.size == 0 or np.any(lengths <= 0):
        raise ModelFormatError("template_lengths must be a non-empty array of positive lengths")
    frames = _floats(a, "template_frames", (int(lengths.sum()), None), np.float32)
    n_utterances = _int(a, "n_utterances")
    std = _float(a, "znorm_std")
    if n_utterances <= 0 or std <= 0:
        raise ModelFormatError("n_utterances and znorm_std must be positive")
    return SpeakerModel(
        means=means,
        ubm_version=_str(a, "ubm_version"),
        n_utterances=n_utterances,
        template_frames=frames,
        template_lengths=lengths,
        template_digits=digits,
        znorm_mean=_float(a, "znorm_mean"),
        znorm_std=std,
        **statistics,
    )
