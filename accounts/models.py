"""The user model (custom from the first migration; it can grow without a swap), voice consent."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def __str__(self) -> str:
        return self.username

    def save(self, *args, **kwargs):
        # A new password (changed, reset, set by an admin) revokes the API token too: sessions
        # end by Django's session hash, and a token taken with the old password must not outlive
        # it. ``_password`` is set by set_password() only; a hasher upgrade at sign-in clears it.
        password_changed = self._password is not None and self.pk is not None
        super().save(*args, **kwargs)
        if password_changed:
            self.api_token_revoke()

    def api_token_revoke(self) -> bool:
        """Delete this user's API token; -> whether there was one."""
        from rest_framework.authtoken.models import Token  # its app needs ours loaded first

        deleted, _ = Token.objects.filter(user=self).delete()
        return bool(deleted)


class VoiceConsent(models.Model):
    """A user's explicit consent to keep a voiceprint, for one version of the consent text.

    Rows are never edited except to record a withdrawal, so the history of what each user agreed
    to, and when, survives (GDPR art. 7(1): the controller must be able to show consent).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="voice_consents"
    )
    text_version = models.CharField(max_length=32)
    given_at = models.DateTimeField(default=timezone.now)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-given_at", "-id")
        constraints = [
            # At most one standing consent per user and text version.
            models.UniqueConstraint(
                fields=("user", "text_version"),
                condition=models.Q(withdrawn_at__isnull=True),
                name="voice_consent_one_standing_per_version",
            ),
            models.CheckConstraint(
                condition=models.Q(withdrawn_at__isnull=True)
                | models.Q(withdrawn_at__gte=models.F("given_at")),
                name="voice_consent_withdrawn_after_given",
            ),
        ]

    def __str__(self) -> str:
        state = "withdrawn" if self.withdrawn_at else "given"
        return f"{self.user} consent v{self.text_version} ({state})"
