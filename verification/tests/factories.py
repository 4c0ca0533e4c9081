"""Test data for the verification API: real features from the development corpus, payloads,
and shortcuts that put rows in place through the services (never by hand).

Features come from ``../shared/data/fsdd`` (``SPEAKERAUTH_CORPUS_DIR``) through
``features.wav_to_utterance``, exactly what a browser would send for those recordings. Tests that
need them skip with a clear message when the corpus is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from verification import features, services
from verification.management.commands.install_default_ubm import DEFAULT_PATH
from verification.models import BackgroundModel, Challenge

# fsdd speakers: GENUINE enrolls and answers, IMPOSTOR answers in their place.
GENUINE = "george"
IMPOSTOR = "jackson"
# Recording indices: the first ENROLL_PER_DIGIT of each digit enroll; answers come from later ones.
ENROLL_PER_DIGIT = 3
ANSWER_INDEX = 20


class FsddCorpus:
    """Features of fsdd recordings, computed once per test session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[tuple[str, int, int], features.Utterance] = {}

    def utterance(self, speaker: str, digit: int, index: int, *, label: bool = True):
        key = (speaker, digit, index)
        if key not in self._cache:
            path = self.folder / f"{digit}_{speaker}_{index}.wav"
            self._cache[key] = features.wav_to_utterance(path, digit=digit)
        utt = self._cache[key]
        if label:
            return utt
        return features.Utterance(mel_bands=utt.mel_bands, rms=utt.rms, digit=None)

    def enrollment(self, speaker: str = GENUINE, per_digit: int = ENROLL_PER_DIGIT) -> list:
        return [self.utterance(speaker, d, i) for i in range(per_digit) for d in range(10)]

    def answer(self, speaker: str, digits, index: int = ANSWER_INDEX) -> list:
        """Utterances of ``digits`` by ``speaker``, unlabelled as a client may send them."""
        return [self.utterance(speaker, int(d), index, label=False) for d in digits]


@pytest.fixture(scope="session")
def fsdd() -> FsddCorpus:
    folder = Path(settings.SPEAKERAUTH_CORPUS_DIR) / "fsdd"
    if not (folder / f"0_{GENUINE}_0.wav").is_file():
        pytest.skip(f"corpus folder {folder} is absent (set SPEAKERAUTH_CORPUS_DIR)")
    return FsddCorpus(folder)


@pytest.fixture
def ubm(db) -> BackgroundModel:
    """The shipped default background model, installed and active."""
    row, _ = services.background_model_install(blob=DEFAULT_PATH.read_bytes(), activate=True)
    return row


def payload(utt: features.Utterance) -> dict:
    return features.utterance_payload(utt)


def enroll(user, corpus: FsddCorpus, speaker: str = GENUINE, per_digit: int = ENROLL_PER_DIGIT):
    """Enroll ``user`` with ``speaker``'s first recordings of every digit (service shortcut)."""
    return services.voiceprint_train(user=user, utterances=corpus.enrollment(speaker, per_digit))


def prompt(challenge_id: str, digits: str) -> None:
    """Pin a challenge's digits so a decision test does not depend on the random draw."""
    Challenge.objects.filter(nonce=challenge_id).update(digits=digits)


def answer_challenge(
    user,
    corpus: FsddCorpus,
    digits: str,
    *,
    client: services.ClientInfo,
    speaker: str = GENUINE,
    index: int = ANSWER_INDEX,
) -> Challenge:
    """Issue a challenge pinned to ``digits`` and answer it with ``speaker``'s recordings."""
    challenge = services.challenge_create(user=user)
    prompt(challenge.nonce, digits)
    services.verification_score(
        user=user,
        challenge_id=challenge.nonce,
        utterances=corpus.answer(speaker, digits, index=index),
        client=client,
    )
    return challenge
