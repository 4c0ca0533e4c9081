"""Unit tests of the engine's numeric functions on synthetic arrays (no corpus, no Django)."""

import dataclasses
import io
import pickle  # noqa: S403 - only to build the hostile payloads that must be refused

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from verification import features
from verification.engine import (
    BackgroundModel,
    EngineConfig,
    ModelFormatError,
    SpeakerModel,
    dump_background_model,
    dump_speaker_model,
    load_background_model,
    load_speaker_model,
)
from verification.engine.adapt import map_adapt_means, sufficient_statistics
from verification.engine.dtw import dtw_distances, dtw_distances_either_way, pad_sequences
from verification.engine.gmm import log_likelihood, posteriors, train_gmm
from verification.engine.scoring import frame_llr, top_components


def random_gmm(rng, n_components=4, n_dims=3):
    weights = rng.dirichlet(np.ones(n_components))
    means = rng.normal(size=(n_components, n_dims)) * 3
    variances = rng.uniform(0.2, 2.0, size=(n_components, n_dims))
    return weights, means, variances


def sklearn_gmm(weights, means, variances):
    gmm = GaussianMixture(n_components=len(weights), covariance_type="diag")
    gmm.weights_, gmm.means_, gmm.covariances_ = weights, means, variances
    gmm.precisions_cholesky_ = 1.0 / np.sqrt(variances)
    return gmm


def test_log_likelihood_equals_sklearn_score_samples():
    rng = np.random.default_rng(0)
    weights, means, variances = random_gmm(rng, n_components=6, n_dims=5)
    X = rng.normal(size=(200, 5)) * 4
    expected = sklearn_gmm(weights, means, variances).score_samples(X)
    np.testing.assert_allclose(log_likelihood(X, weights, means, variances), expected, rtol=1e-10)


def test_posteriors_equal_sklearn_predict_proba():
    rng = np.random.default_rng(1)
    weights, means, variances = random_gmm(rng)
    X = rng.normal(size=(50, 3))
    expected = sklearn_gmm(weights, means, variances).predict_proba(X)
    np.testing.assert_allclose(posteriors(X, weights, means, variances), expected, atol=1e-12)


def test_train_gmm_is_reproducible_for_a_seed():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-3, 1, size=(300, 2)), rng.normal(3, 1, size=(300, 2))])
    first = train_gmm(X, 2, seed=7)
    second = train_gmm(X, 2, seed=7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.sort(first[1][:, 0]), [-3, 3], atol=0.2)


def test_map_adaptation_matches_hand_computed_means():
    ubm_means = np.array([[0.0, 0.0], [10.0, 10.0]])
    # Component 0 saw 4 frames (sum [8, 4]), component 1 saw nothing; r = 4.
    counts = np.array([4.0, 0.0])
    first = np.array([[8.0, 4.0], [0.0, 0.0]])
    adapted = map_adapt_means(ubm_means, counts, first, relevance=4.0)
    # alpha = 4 / (4 + 4) = 0.5; E[x] = [2, 1] -> 0.5 * [2, 1] + 0.5 * [0, 0] = [1, 0.5].
    np.testing.assert_allclose(adapted, [[1.0, 0.5], [10.0, 10.0]])


def test_sufficient_statistics_of_well_separated_frames():
    weights = np.array([0.5, 0.5])
    means = np.array([[0.0], [100.0]])
    variances = np.ones((2, 1))
    X = np.array([[1.0], [-1.0], [3.0], [99.0]])
    counts, first = sufficient_statistics(X, weights, means, variances)
    np.testing.assert_allclose(counts, [3.0, 1.0])
    np.testing.assert_allclose(first, [[3.0], [99.0]])


def test_top_components_picks_the_best_per_frame():
    wld = np.array([[0.0, 5.0, 1.0, 4.0], [9.0, 0.0, 8.0, 1.0]])
    top = np.sort(top_components(wld, 2), axis=1)
    np.testing.assert_array_equal(top, [[1, 3], [0, 2]])


def test_top_components_are_best_first_and_agree_with_argpartition():
    rng = np.random.default_rng(0)
    wld = rng.normal(size=(300, 128))
    top = top_components(wld, 5)
    picked = np.take_along_axis(wld, top, axis=1)
    assert (np.diff(picked, axis=1) < 0).all()  # best first
    reference = np.argpartition(wld, 123, axis=1)[:, -5:]
    np.testing.assert_array_equal(np.sort(top, axis=1), np.sort(reference, axis=1))


def test_top_components_with_minus_infinity_never_repeat_a_component():
    wld = np.array([[0.0, -np.inf, -np.inf, -np.inf], [-np.inf, 2.0, -np.inf, 1.0]])
    top = top_components(wld, 3)
    assert all(len(set(row)) == 3 for row in top.tolist())
    assert {1, 3} <= set(top[1].tolist())  # both finite ones


def test_frame_llr_with_all_components_is_the_exact_likelihood_ratio():
    rng = np.random.default_rng(3)
    weights, means, variances = random_gmm(rng, n_components=5, n_dims=4)
    speaker = means + rng.normal(scale=0.5, size=means.shape)
    X = rng.normal(size=(40, 4)) * 3
    exact = log_likelihood(X, weights, speaker, variances) - log_likelihood(
        X, weights, means, variances
    )
    llr = frame_llr(X, weights, means, variances, speaker, top_c=5)
    np.testing.assert_allclose(llr, exact, rtol=1e-10)


def test_frame_llr_top_c_uses_only_the_ubms_best_components():
    weights = np.array([0.5, 0.5])
    means = np.array([[0.0], [50.0]])
    variances = np.ones((2, 1))
    # The speaker moved component 1 onto the frame; with top-1 only component 0 (the UBM's best
    # for x = 1) is evaluated for both models, so the ratio stays at 0.
    speaker = np.array([[0.0], [1.0]])
    X = np.array([[1.0]])
    assert frame_llr(X, weights, means, variances, speaker, top_c=1)[0] == pytest.approx(0.0)
    # With both: log((N(1; 0) + N(1; 1)) / N(1; 0)) = log(1 + e^0.5).
    expected = np.log1p(np.exp(0.5))
    assert frame_llr(X, weights, means, variances, speaker, top_c=2)[0] == pytest.approx(expected)


def test_dtw_is_zero_for_identical_sequences_and_tolerates_time_stretch():
    rng = np.random.default_rng(4)
    seq = rng.normal(size=(12, 3))
    stretched = np.repeat(seq, 2, axis=0)
    other = rng.normal(size=(12, 3))
    queries, q_len = pad_sequences([seq, stretched])
    templates, t_len = pad_sequences([seq, other])
    dist = dtw_distances(queries, q_len, templates, t_len)
    assert dist[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert dist[1, 0] == pytest.approx(0.0, abs=1e-6)
    assert dist[0, 1] > 0.5


def test_dtw_cannot_align_a_template_more_than_twice_as_long():
    queries, q_len = pad_sequences([np.zeros((3, 2))])
    templates, t_len = pad_sequences([np.zeros((8, 2))])
    assert np.isinf(dtw_distances(queries, q_len, templates, t_len)[0, 0])


def test_dtw_either_way_aligns_a_query_less_than_half_as_long_the_other_way():
    rng = np.random.default_rng(14)
    template = rng.normal(size=(8, 2))
    query = template[::3]  # 3 frames: forward alignment impossible
    queries, q_len = pad_sequences([query])
    templates, t_len = pad_sequences([template])
    assert np.isinf(dtw_distances(queries, q_len, templates, t_len)[0, 0])
    either = dtw_distances_either_way(queries, q_len, templates, t_len)[0, 0]
    reverse = dtw_distances(templates, t_len, queries, q_len)[0, 0]
    assert np.isfinite(either)
    assert either == pytest.approx(reverse)


def small_background_model(rng, n_components=4):
    config = features.DEFAULT_CONFIG
    weights, means, variances = random_gmm(rng, n_components, config.n_dims)
    return BackgroundModel(
        weights=weights,
        means=means,
        variances=variances,
        threshold=0.25,
        version="test-ubm",
        feature_version=features.FEATURE_VERSION,
        provenance={"corpus": "synthetic", "speakers": ["a", "b"]},
        config=EngineConfig(relevance=8.0, top_c=3),
        # Cohort frames are stored as float16 (train.build_cohort rounds them the same way).
        cohort_frames=rng.normal(size=(30, config.n_dims)).astype(np.float16).astype(np.float32),
        cohort_lengths=np.array([10, 20]),
    )


def small_speaker_model(rng):
    return SpeakerModel(
        means=rng.normal(size=(4, 40)),
        ubm_version="test-ubm",
        n_utterances=3,
        template_frames=rng.normal(size=(9, 13)).astype(np.float32),
        template_lengths=np.array([2, 3, 4]),
        template_digits=np.array([1, 2, 1]),
        znorm_mean=0.5,
        znorm_std=1.5,
    )


def test_background_model_round_trip():
    ubm = small_background_model(np.random.default_rng(5))
    loaded = load_background_model(dump_background_model(ubm))
    for name in ("weights", "means", "variances", "cohort_frames", "cohort_lengths"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(ubm, name))
    assert (loaded.threshold, loaded.version, loaded.feature_version) == (
        0.25,
        "test-ubm",
        ubm.feature_version,
    )
    assert loaded.provenance == ubm.provenance
    assert loaded.config == ubm.config
    assert loaded.cepstra_config == ubm.cepstra_config


def test_speaker_model_round_trip():
    model = small_speaker_model(np.random.default_rng(6))
    loaded = load_speaker_model(dump_speaker_model(model))
    for name in ("means", "template_frames", "template_lengths", "template_digits"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert (loaded.ubm_version, loaded.n_utterances) == ("test-ubm", 3)
    assert (loaded.znorm_mean, loaded.znorm_std) == (0.5, 1.5)


def test_speaker_model_round_trip_keeps_the_enrolment_statistics():
    rng = np.random.default_rng(7)
    model = dataclasses.replace(small_speaker_model(rng), stat_counts=rng.uniform(0, 5, size=4))
    loaded = load_speaker_model(dump_speaker_model(model))
    np.testing.assert_array_equal(loaded.stat_counts, model.stat_counts)
    # Models written before the statistics were kept still load, without them.
    assert not load_speaker_model(dump_speaker_model(small_speaker_model(rng))).has_statistics


def _speaker_arrays(model) -> dict:
    with np.load(io.BytesIO(dump_speaker_model(model)), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stat_counts": -np.ones(4)}, "must not be negative"),
        ({"stat_counts": np.ones(3)}, "stat_counts: expected shape"),
        ({"stat_counts": np.full(4, np.nan)}, "NaN or infinity"),
        ({"stat_first": np.zeros((4, 40))}, "differ from the expected"),
    ],
)
def test_inconsistent_enrolment_statistics_are_refused(change, message):
    rng = np.random.default_rng(8)
    model = dataclasses.replace(small_speaker_model(rng), stat_counts=np.ones(4))
    arrays = _speaker_arrays(model)
    for name, value in change.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    with pytest.raises(ModelFormatError, match=message):
        load_speaker_model(npz_bytes(**arrays))


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_object_array_saved_with_pickle_is_refused():
    payload = npz_bytes(
        kind=np.array("speakerauth.speaker_model"),
        format_version=np.array(1),
        means=np.array([{"evil": "object"}], dtype=object),
    )
    with pytest.raises(ModelFormatError, match="unreadable model blob"):
        load_speaker_model(payload)


def test_raw_pickle_bytes_are_refused():
    payload = pickle.dumps({"means": np.zeros((2, 2))})
    with pytest.raises(ModelFormatError, match="unreadable model blob"):
        load_speaker_model(payload)


def test_speaker_blob_is_not_accepted_as_background_model():
    blob = dump_speaker_model(small_speaker_model(np.random.default_rng(7)))
    with pytest.raises(ModelFormatError, match="expected a speakerauth.background_model blob"):
        load_background_model(blob)


def test_non_finite_means_are_refused():
    model = small_speaker_model(np.random.default_rng(8))
    model.means[0, 0] = np.nan
    with pytest.raises(ModelFormatError, match="means: contains NaN"):
        load_speaker_model(dump_speaker_model(model))


def test_wrong_shape_is_refused():
    ubm = small_background_model(np.random.default_rng(9))
    blob = dump_background_model(
        BackgroundModel(
            weights=ubm.weights,
            means=ubm.means,
            variances=ubm.variances[:, :3],
            threshold=ubm.threshold,
            version=ubm.version,
            feature_version=ubm.feature_version,
            provenance=ubm.provenance,
        )
    )
    with pytest.raises(ModelFormatError, match="variances: expected shape"):
        load_background_model(blob)


def test_unknown_format_version_is_refused():
    blob = dump_speaker_model(small_speaker_model(np.random.default_rng(10)))
    with np.load(io.BytesIO(blob)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["format_version"] = np.array(99)
    with pytest.raises(ModelFormatError, match="format version 99"):
        load_speaker_model(npz_bytes(**arrays))
