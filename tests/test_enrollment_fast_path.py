"""voiceprint_train adapts the model before it writes (so the audit chain's lock is held briefly),
and verification reads speaker models through a per-process cache: both must give exactly the
models stored in the database, and the cache must never outlive a retrain or a delete."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from verification import engine, features, selectors, services
from verification.management.commands.install_default_ubm import DEFAULT_PATH
from verification.models import AuditEvent, AuditEventKind, EnrollmentUtterance, SpeakerModel
from verification.tests.availability import require

SPEAKER = "theo"


@pytest.fixture
def ubm(db):
    require(DEFAULT_PATH.is_file(), f"{DEFAULT_PATH} is not there yet (the engine ships it)")
    row, _ = services.background_model_install(blob=DEFAULT_PATH.read_bytes(), activate=True)
    return row


@pytest.fixture(scope="module")
def recordings():
    folder = Path(settings.SPEAKERAUTH_CORPUS_DIR) / "fsdd"
    require(folder.is_dir(), f"corpus folder {folder} is absent (set SPEAKERAUTH_CORPUS_DIR)")
    return [
        features.wav_to_utterance(folder / f"{digit}_{SPEAKER}_{index}.wav", digit=digit)
        for index in range(4)
        for digit in range(10)
    ]


def _means(user) -> np.ndarray:
    return engine.load_speaker_model(bytes(SpeakerModel.objects.get(user=user).blob)).means


def _model(user) -> engine.SpeakerModel:
    return engine.load_speaker_model(bytes(SpeakerModel.objects.get(user=user).blob))


def test_train_adapts_the_same_model_a_retrain_from_stored_utterances_gives(alice, ubm, recordings):
    services.voiceprint_train(user=alice, utterances=recordings[:30])
    # Each further utterance extends the stored model from its kept statistics (enroll_more).
    for utterance in recordings[30:34]:
        services.voiceprint_train(user=alice, utterances=[utterance])
    incremental = _model(alice)

    services.speaker_model_train(user=alice)  # re-adapts from all 34 stored utterances
    retrained = _model(alice)

    assert SpeakerModel.objects.get(user=alice).version == 6
    assert incremental.n_utterances == retrained.n_utterances == 34
    # The same sums in another order: equal to rounding.
    np.testing.assert_allclose(incremental.means, retrained.means, rtol=0, atol=1e-10)
    np.testing.assert_allclose(incremental.stat_counts, retrained.stat_counts, rtol=1e-12)
    np.testing.assert_allclose(incremental.znorm_mean, retrained.znorm_mean, atol=1e-10)
    np.testing.assert_allclose(incremental.znorm_std, retrained.znorm_std, atol=1e-10)
    assert np.array_equal(incremental.template_frames, retrained.template_frames)
    assert np.array_equal(incremental.template_digits, retrained.template_digits)


def test_a_model_without_kept_statistics_is_re_adapted_from_every_stored_utterance(
    alice, ubm, recordings
):
    services.voiceprint_train(user=alice, utterances=recordings[:30])
    row = SpeakerModel.objects.get(user=alice)
    old = dataclasses.replace(
        _model(alice), stat_counts=np.zeros(0)
    )  # as written before the statistics were kept
    row.blob = engine.dump_speaker_model(old)
    row.save(update_fields=["blob"])

    services.voiceprint_train(user=alice, utterances=recordings[30:31])

    model = _model(alice)
    assert model.has_statistics
    assert model.n_utterances == 31
    expected = engine.enroll(selectors.background_model_engine(ubm), recordings[:31])
    np.testing.assert_allclose(model.means, expected.means, rtol=0, atol=1e-12)


def test_utterances_stored_while_not_ready_are_in_the_next_model(alice, ubm, recordings, settings):
    services.voiceprint_train(user=alice, utterances=recordings[:30])
    settings.VERIFICATION_MIN_UTTERANCES_PER_DIGIT = 5  # raised: not ready any more
    assert services.voiceprint_train(user=alice, utterances=recordings[30:31]) is None
    settings.VERIFICATION_MIN_UTTERANCES_PER_DIGIT = 3

    services.voiceprint_train(user=alice, utterances=recordings[31:32])

    model = _model(alice)
    assert model.n_utterances == 32
    expected = engine.enroll(selectors.background_model_engine(ubm), recordings[:32])
    np.testing.assert_allclose(model.means, expected.means, rtol=0, atol=1e-12)


def test_train_below_the_minimum_stores_and_audits_without_a_model(alice, ubm, recordings):
    result = services.voiceprint_train(user=alice, utterances=recordings[:29])

    assert result is None
    assert not SpeakerModel.objects.filter(user=alice).exists()
    assert EnrollmentUtterance.objects.filter(user=alice).count() == 29
    added = AuditEvent.objects.filter(user=alice, kind=AuditEventKind.UTTERANCE_ADDED)
    assert added.count() == 29


def test_train_audits_every_utterance_and_the_model(alice, ubm, recordings):
    services.voiceprint_train(user=alice, utterances=recordings[:30])

    kinds = list(
        AuditEvent.objects.filter(user=alice).order_by("seq").values_list("kind", flat=True)
    )
    assert kinds == [AuditEventKind.UTTERANCE_ADDED] * 30 + [AuditEventKind.MODEL_TRAINED]


def test_speaker_model_cache_serves_the_stored_blob(alice, ubm, recordings):
    services.voiceprint_train(user=alice, utterances=recordings[:30])
    row = selectors.speaker_model_get(user=alice)

    cached = selectors.speaker_model_engine(row)

    assert "blob" in row.get_deferred_fields()
    assert np.array_equal(cached.means, _means(alice))
    assert selectors.speaker_model_engine(selectors.speaker_model_get(user=alice)) is cached


def test_speaker_model_cache_never_serves_a_model_from_before_a_retrain(alice, ubm, recordings):
    services.voiceprint_train(user=alice, utterances=recordings[:30])
    before = selectors.speaker_model_engine(selectors.speaker_model_get(user=alice))

    services.voiceprint_train(user=alice, utterances=recordings[30:31])
    after = selectors.speaker_model_engine(selectors.speaker_model_get(user=alice))

    assert after.n_utterances == before.n_utterances + 1
    assert np.array_equal(after.means, _means(alice))


def test_speaker_model_cache_never_serves_a_deleted_voiceprint(alice, ubm, recordings):
    services.voiceprint_train(user=alice, utterances=recordings[:30])
    before = selectors.speaker_model_engine(selectors.speaker_model_get(user=alice))
    services.voiceprint_delete(user=alice)

    services.voiceprint_train(user=alice, utterances=recordings[10:40])
    after = selectors.speaker_model_engine(selectors.speaker_model_get(user=alice))

    assert not np.array_equal(after.means, before.means)
    assert np.array_equal(after.means, _means(alice))
