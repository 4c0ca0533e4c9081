"""Parity of verification.features with real Meyda 5.6.3 (npm) run in Node.

The Python side decodes and resamples the WAV (read_wav + resample_to_16k) and writes the 16 kHz
float32 signal; tools/meyda/extract.mjs frames it as the browser does and calls
``Meyda.extract(['melBands', 'rms'], frame)``. Both sides therefore see the same samples, and any
difference is in the feature arithmetic.

Tolerance: relative error |python - meyda| / |meyda| <= 1e-6 for every value; where Meyda gives
exactly 0 (digital silence), Python must give exactly 0 too (no relative slack around zero).

Runs in CI; locally it skips when node or node_modules/meyda is missing, and everywhere it skips
the corpus cases when the corpus folder is absent.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from verification.features import (
    FRAME_LENGTH,
    mel_filter_bank,
    meyda_features,
    read_wav,
    resample_to_16k,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "meyda" / "extract.mjs"
RTOL = 1e-6
# (folder, sample rate): fsdd exercises the 8 kHz -> 16 kHz path, dspspeech20 native 16 kHz.
CORPORA = [("fsdd", 8000), ("dspspeech20", 16000)]
FILES_PER_CORPUS = 2


def _node() -> str:
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else "node_modules/meyda is missing (run npm ci)"
        if not (ROOT / "node_modules" / "meyda" / "package.json").is_file()
        else None
    )
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"parity test must run in CI: {missing}")
        pytest.skip(f"parity with Meyda needs Node: {missing}")
    return node


def _corpus_files(folder: str) -> list[Path]:
    corpus = Path(settings.SPEAKERAUTH_CORPUS_DIR) / folder
    files = sorted(corpus.glob("*.wav"))
    if not files:
        pytest.skip(f"corpus folder {corpus} is absent (set SPEAKERAUTH_CORPUS_DIR)")
    # Spread the picks over the folder (different speakers and labels), deterministically.
    step = max(1, len(files) // FILES_PER_CORPUS)
    return files[::step][:FILES_PER_CORPUS]


def run_meyda(signal_16k: np.ndarray, tmp_path: Path) -> dict:
    node = _node()
    raw = tmp_path / "signal.f32"
    raw.write_bytes(np.asarray(signal_16k, dtype="<f4").tobytes())
    proc = subprocess.run(
        [node, str(SCRIPT), str(raw)], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def max_relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |actual - reference| / |reference| (inf where only the reference is exactly 0)."""
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert actual.shape == reference.shape
    diff = np.abs(actual - reference)
    rel = np.divide(diff, np.abs(reference), out=np.zeros_like(diff), where=reference != 0)
    rel[(reference == 0) & (diff != 0)] = np.inf
    return float(rel.max(initial=0.0))


def assert_parity(signal_16k: np.ndarray, tmp_path: Path) -> tuple[float, float]:
    ref = run_meyda(signal_16k, tmp_path)
    assert ref["meyda_version"] == "5.6.3"
    mel, rms = meyda_features(signal_16k)
    assert ref["n_frames"] == mel.shape[0] > 0
    mel_err = max_relative_error(mel, ref["mel_bands"])
    rms_err = max_relative_error(rms, ref["rms"])
    assert mel_err <= RTOL, f"melBands max relative error {mel_err:.3g}"
    assert rms_err <= RTOL, f"rms max relative error {rms_err:.3g}"
    return mel_err, rms_err


@pytest.mark.parametrize(("folder", "rate"), CORPORA)
def test_corpus_features_match_meyda(folder, rate, tmp_path):
    for path in _corpus_files(folder):
        signal, file_rate = read_wav(path)
        assert file_rate == rate, f"{path.name}: expected a {rate} Hz file"
        assert_parity(resample_to_16k(signal, file_rate), tmp_path)


def test_synthetic_signal_with_silence_and_clipping_matches_meyda(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    speechy = 0.3 * np.sin(2 * np.pi * 220 * t) * rng.uniform(0.2, 1.0, t.size)
    signal = np.concatenate(
        [
            np.zeros(2000),  # digital silence: exact zeros on both sides
            1e-4 * rng.standard_normal(3000),  # near the noise floor
            speechy,
            np.clip(3 * rng.standard_normal(4000), -1, 1),  # full-scale, clipped
        ]
    ).astype(np.float32)
    assert_parity(signal, tmp_path)


def test_mel_filter_bank_matches_meyda(tmp_path):
    rng = np.random.default_rng(0)
    ref = run_meyda(rng.uniform(-0.5, 0.5, FRAME_LENGTH).astype(np.float32), tmp_path)
    np.testing.assert_array_equal(mel_filter_bank(), np.array(ref["mel_filter_bank"]))
