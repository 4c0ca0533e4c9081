"""The verification engine: GMM-UBM speaker models, content check, metrics, model blobs.

Pure numpy/scikit-learn, no Django. The API, the evaluation command and the tests all go through
the names re-exported here.
"""

from .model import (
    REASON_ACCEPTED,
    REASON_LOW_SCORE,
    REASON_WRONG_CONTENT,
    BackgroundModel,
    EngineConfig,
    SpeakerModel,
    Verdict,
    enroll,
    enroll_more,
    score,
    verify,
)
from .serialize import (
    ModelFormatError,
    dump_background_model,
    dump_speaker_model,
    load_background_model,
    load_speaker_model,
)

__all__ = [
    "REASON_ACCEPTED",
    "REASON_LOW_SCORE",
    "REASON_WRONG_CONTENT",
    "BackgroundModel",
    "EngineConfig",
    "ModelFormatError",
    "SpeakerModel",
    "Verdict",
    "dump_background_model",
    "dump_speaker_model",
    "enroll",
    "enroll_more",
    "load_background_model",
    "load_speaker_model",
    "score",
    "verify",
]
