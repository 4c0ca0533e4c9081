"""The engine's management commands on small real corpus subsets: train_ubm and evaluate.

A 4-component UBM on 4 dspspeech20 speakers trains in a second or two; evaluate runs on three
fsdd speakers with few trials. Without the corpus these tests skip locally and FAIL in CI.
"""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from verification import engine
from verification.tests.availability import require

TRAIN_SPEAKERS = ["15307110189", "15307110252", "15307110264", "15307130120"]
FSDD_SPEAKERS = ["george", "jackson", "lucas"]


def _corpus(name: str) -> Path:
    folder = Path(settings.SPEAKERAUTH_CORPUS_DIR) / name
    require(folder.is_dir(), f"corpus folder {folder} is absent (set SPEAKERAUTH_CORPUS_DIR)")
    return folder


def _train(out: Path, *extra: str) -> str:
    stdout = io.StringIO()
    call_command(
        "train_ubm",
        "--corpus", str(_corpus("dspspeech20")),
        "--speakers", ",".join(TRAIN_SPEAKERS),
        "--components", "4",
        "--max-frames", "4000",
        "--out", str(out),
        *extra,
        stdout=stdout,
    )  # fmt: skip
    return stdout.getvalue()


@pytest.fixture(scope="module")
def small_ubm(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ubm") / "small.npz"
    log = _train(out, "--calibration-folds", "2", "--calibration-trials", "30")
    return out, log


def _evaluate(ubm_path: Path, *extra: str) -> str:
    stdout = io.StringIO()
    call_command(
        "evaluate",
        str(_corpus("fsdd")),
        "--ubm", str(ubm_path),
        "--speakers", ",".join(FSDD_SPEAKERS),
        "--trials", "20",
        *extra,
        stdout=stdout,
        stderr=io.StringIO(),
    )  # fmt: skip
    return stdout.getvalue()


def test_train_ubm_writes_a_loadable_model_of_the_requested_size(small_ubm):
    path, _ = small_ubm
    ubm = engine.load_background_model(path.read_bytes())
    assert (ubm.n_components, ubm.n_dims) == (4, ubm.cepstra_config.n_dims)
    assert ubm.version.startswith("dspspeech20-c4-")
    assert ubm.cohort_lengths.size > 0


def test_train_ubm_records_provenance(small_ubm):
    path, _ = small_ubm
    prov = engine.load_background_model(path.read_bytes()).provenance
    assert prov["corpus"] == "dspspeech20"
    assert prov["speakers"] == sorted(TRAIN_SPEAKERS)
    assert prov["n_files"] == len(TRAIN_SPEAKERS) * 20 * 4
    assert prov["params"]["n_components"] == 4
    assert prov["training_frames"] == 4000
    assert prov["created"][:4].isdigit()
    assert prov["command"].startswith("manage.py train_ubm")


def test_train_ubm_calibrates_the_threshold_on_held_out_folds(small_ubm):
    path, log = small_ubm
    ubm = engine.load_background_model(path.read_bytes())
    calibration = ubm.provenance["calibration"]
    assert len(calibration["folds"]) == 2
    held_out = sorted(s for fold in calibration["folds"] for s in fold["speakers"])
    assert held_out == sorted(TRAIN_SPEAKERS)
    # 2 folds x 30 trials, on the wideband and the 8 kHz-channel version of each recording.
    assert calibration["genuine_trials"] == calibration["impostor_trials"] == 2 * 30 * 2
    assert np.isfinite(ubm.threshold)
    assert ubm.threshold != 0.0
    assert f"calibrated threshold {ubm.threshold:.3f}" in log


def test_train_ubm_prints_progress(small_ubm):
    _, log = small_ubm
    assert "EM iteration" in log
    assert "calibration fold 2/2" in log
    assert "wrote " in log


def test_train_ubm_leaves_out_excluded_speakers(tmp_path):
    out = tmp_path / "ubm.npz"
    _train(out, "--exclude-speakers", TRAIN_SPEAKERS[0], "--calibration-folds", "0")
    prov = engine.load_background_model(out.read_bytes()).provenance
    assert prov["speakers"] == sorted(TRAIN_SPEAKERS[1:])
    assert prov["excluded_speakers"] == [TRAIN_SPEAKERS[0]]


def test_train_ubm_without_calibration_stores_the_given_threshold(tmp_path):
    out = tmp_path / "ubm.npz"
    _train(out, "--calibration-folds", "0", "--threshold", "1.5")
    assert engine.load_background_model(out.read_bytes()).threshold == 1.5


def test_train_ubm_builds_cohort_models_only_for_asnorm(small_ubm, tmp_path):
    assert engine.load_background_model(small_ubm[0].read_bytes()).cohort_shifts.shape[0] == 0
    out = tmp_path / "asnorm.npz"
    _train(out, "--calibration-folds", "0", "--asnorm-top", "2")
    ubm = engine.load_background_model(out.read_bytes())
    assert ubm.config.asnorm_top == 2
    # One model per training speaker (the speakers alternate between the two channels).
    assert ubm.cohort_shifts.shape == (len(TRAIN_SPEAKERS), 4, ubm.n_dims)


def test_train_ubm_names_an_unknown_speaker(tmp_path):
    with pytest.raises(CommandError, match="nobody"):
        _train(tmp_path / "ubm.npz", "--exclude-speakers", "nobody")


def test_evaluate_json_has_rates_keyed_by_k(small_ubm):
    path, _ = small_ubm
    report = json.loads(_evaluate(path, "--json"))
    assert report["speakers"] == FSDD_SPEAKERS
    for k in ("3", "5"):
        rates = report[k]
        for key in ("eer", "frr_at_far1", "far", "frr", "wrong_content_rejected"):
            assert 0.0 <= rates[key] <= 100.0
        assert rates["min_dcf"] >= 0.0
        low, high = rates["eer_interval"]  # over the three speakers, drawn again
        assert 0.0 <= low <= rates["eer"] <= high <= 100.0
        speakers = rates["per_speaker"]
        assert sorted(speakers) == FSDD_SPEAKERS
        assert sum(s["genuine_trials"] for s in speakers.values()) == 20
        assert sum(s["impostor_trials_speaking"] for s in speakers.values()) == 20
        assert rates["genuine_trials"] == rates["impostor_trials"] == 20
        assert rates["wrong_content_trials"] == 20
        assert rates["threshold"] == report["threshold"]


def test_evaluate_is_reproducible_for_a_seed(small_ubm):
    path, _ = small_ubm
    first = json.loads(_evaluate(path, "--json", "--k", "3", "--seed", "4"))
    second = json.loads(_evaluate(path, "--json", "--k", "3", "--seed", "4"))
    first.pop("seconds"), second.pop("seconds")
    assert first == second


def test_evaluate_prints_a_table_and_draws_det_curves(small_ubm, tmp_path):
    path, _ = small_ubm
    png = tmp_path / "det.png"
    table = _evaluate(path, "--k", "3", "--plot", str(png))
    assert "EER %" in table
    assert "95 % interval (by speaker)" in table
    assert "interval" not in _evaluate(path, "--k", "3", "--bootstrap", "0")
    assert "at the shipped threshold" not in table
    by_speaker = _evaluate(path, "--k", "3", "--per-speaker").splitlines()
    assert sum(line.split()[0] in FSDD_SPEAKERS for line in by_speaker) == len(FSDD_SPEAKERS)
    assert "K=3" in table
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_a_ubm_trained_on_the_evaluated_speakers(small_ubm):
    path, _ = small_ubm
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="trained on evaluated speakers"):
        call_command(
            "evaluate",
            str(_corpus("dspspeech20")),
            "--ubm", str(path),
            "--speakers", ",".join(TRAIN_SPEAKERS[:2]),
            stdout=stdout,
            stderr=io.StringIO(),
        )  # fmt: skip


def test_evaluate_can_spread_the_enrolment_over_the_indices(small_ubm):
    path, _ = small_ubm
    lowest = json.loads(_evaluate(path, "--json", "--k", "3"))
    spread = json.loads(_evaluate(path, "--json", "--k", "3", "--enroll-from", "spread"))
    assert (lowest["enroll_from"], spread["enroll_from"]) == ("lowest", "spread")
    assert spread["3"]["genuine_trials"] == 20
    assert spread["3"] != lowest["3"]  # other models, other test takes


def test_evaluate_refuses_a_negative_bootstrap(small_ubm):
    path, _ = small_ubm
    with pytest.raises(CommandError, match="--bootstrap must be >= 0"):
        _evaluate(path, "--bootstrap", "-1")
