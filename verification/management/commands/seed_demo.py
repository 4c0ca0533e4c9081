"""Seed a demo deployment with real verification traffic for the admin review and dashboard.

Enrolls one demo user per FSDD speaker (``SPEAKERAUTH_CORPUS_DIR``/fsdd, real recordings turned
into browser features) and answers real challenges through ``services.verification_score``:
genuine answers (the user's own later recordings) and impostor answers (another speaker), plus a
few replayed and unknown challenges. A demo staff user labels the scored attempts with the
ground truth the seed knows (and resets lockouts, audited). Everything goes through the services,
so the audit chain is real; timestamps are the real time of seeding.

Refuses to run twice or on a database with users other than the demo ones (it is for a
throwaway database: ``DATABASE_URL=sqlite:////tmp/demo.sqlite3``).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from verification import features, selectors, services
from verification.models import AttemptLabel, Challenge, VerificationLockout

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
ENROLL_PER_DIGIT = 3
FIRST_ANSWER_INDEX = 10
ADMIN = "demo_admin"


class Command(BaseCommand):
    help = "Fill a throwaway database with demo users and real verification attempts."

    def add_arguments(self, parser):
        parser.add_argument("--attempts", type=int, default=12, help="Answers per demo user.")
        parser.add_argument("--admin-password", default="", help="Password of demo_admin.")
        parser.add_argument("--seed", type=int, default=6, help="Random seed of the answers.")
        parser.add_argument(
            "--label-fraction",
            type=float,
            default=0.8,
            help="Share of scored attempts the demo admin labels with the ground truth.",
        )

    def handle(self, *args, attempts: int, admin_password: str, seed: int, **options):
        folder = Path(settings.SPEAKERAUTH_CORPUS_DIR) / "fsdd"
        if not folder.is_dir():
            raise CommandError(f"{folder} not found (set SPEAKERAUTH_CORPUS_DIR)")
        if selectors.background_model_active() is None:
            raise CommandError("no active background model: run install_default_ubm first")
        User = get_user_model()
        if User.objects.exclude(username__startswith="demo_").exists():
            raise CommandError("refusing to seed a database with real users")
        if User.objects.filter(username=ADMIN).exists():
            raise CommandError("already seeded")
        rng = np.random.default_rng(seed)
        password = admin_password or secrets.token_urlsafe(12)
        admin = User.objects.create_superuser(ADMIN, "admin@demo.invalid", password)

        def utt(speaker: str, digit: int, index: int, label: bool = True):
            path = folder / f"{digit}_{speaker}_{index}.wav"
            return features.wav_to_utterance(path, digit=digit if label else None)

        users = {}
        for speaker in SPEAKERS:
            user = User.objects.create_user(f"demo_{speaker}", password=secrets.token_urlsafe(12))
            enrollment = [utt(speaker, d, i) for i in range(ENROLL_PER_DIGIT) for d in range(10)]
            services.voiceprint_train(user=user, utterances=enrollment)
            users[speaker] = user
        self.stdout.write(f"enrolled {len(users)} demo users")

        truths = []  # (attempt, truth)
        for n in range(attempts):
            for speaker, user in users.items():
                impostor = n % 3 == 2
                said_by = speaker
                if impostor:
                    said_by = str(rng.choice([s for s in SPEAKERS if s != speaker]))
                challenge = services.challenge_create(user=user)
                index = FIRST_ANSWER_INDEX + n + int(rng.integers(0, 20))
                answer = [utt(said_by, d, index, label=False) for d in challenge.digit_list]
                outcome = services.verification_score(
                    user=user,
                    challenge_id=challenge.nonce,
                    utterances=answer,
                    client=services.ClientInfo(ip="192.0.2.10", user_agent="seed_demo"),
                )
                if outcome.attempt.score is not None:
                    truths.append((outcome.attempt, "impostor" if impostor else "genuine"))
                if n % 5 == 4:  # a replay of the same answer, and a made-up challenge id
                    for nonce in (challenge.nonce, secrets.token_urlsafe(32)):
                        services.verification_score(
                            user=user,
                            challenge_id=nonce,
                            utterances=answer,
                            client=services.ClientInfo(ip="198.51.100.66", user_agent="replayer"),
                        )
                lockout = VerificationLockout.objects.filter(user=user).first()
                if lockout and lockout.locked_until:
                    services.verification_lockout_reset(user=user, actor=admin)
        with transaction.atomic():
            for attempt, truth in truths:
                if rng.random() < options["label_fraction"]:
                    services.attempt_label_set(attempt=attempt, truth=truth, actor=admin)
        Challenge.objects.filter(used_at__isnull=True, attempts__isnull=True).delete()
        self.stdout.write(
            f"{len(truths)} scored attempts, "
            f"{AttemptLabel.objects.count()} labelled; staff login {ADMIN} / {password}"
        )
