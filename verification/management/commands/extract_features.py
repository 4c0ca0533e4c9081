"""``manage.py extract_features FILE.wav``: the JSON utterance payload a browser would send."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from verification.features import FeatureError, utterance_payload, wav_to_utterance


class Command(BaseCommand):
    help = (
        "Print the JSON utterance payload (feature contract, Meyda melBands and rms) the browser "
        "would send for a WAV file, e.g. to build curl bodies."
    )

    def add_arguments(self, parser):
        parser.add_argument("wav", type=Path, help="PCM WAV file (any rate, mono or stereo)")
        parser.add_argument("--digit", type=int, choices=range(10), help="the digit said (0-9)")
        parser.add_argument(
            "--compact",
            action="store_true",
            help="send mel_bands and rms as base64 little-endian float16 (mel_bands_b64, rms_b64)",
        )

    def handle(self, *args, **options):
        path: Path = options["wav"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            utt = wav_to_utterance(path, digit=options["digit"])
        except FeatureError as exc:
            raise CommandError(f"{path}: {exc.message}") from exc
        payload = utterance_payload(utt, encoding="float16" if options["compact"] else None)
        self.stdout.write(json.dumps(payload, separators=(",", ":")))
