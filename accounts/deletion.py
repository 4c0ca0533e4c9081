"""Deleting an account: everything that can go goes; what the audit log must keep is anonymised.

The audit tables are append-only and hash-chained, and their rows point at the user, so the user
row stays, anonymised: no username, e-mail or name of the person, no usable password, inactive,
no staff rights. The voiceprint is deleted (audited), the API token revoked, counted failed
sign-ins under the old username deleted, standing consents withdrawn (the consent history stays:
GDPR art. 7(1)). What stays is what the audit log holds: times, decisions, client addresses and
user agents of past attempts, kept for security review.
"""

from __future__ import annotations

import secrets

from django.db import transaction

from accounts.consent import voice_consent_withdraw


@transaction.atomic
def account_delete(*, user, actor=None) -> None:
    """Delete ``user``'s account (``actor``: the staff member who did, for the audit log)."""
    from axes.models import AccessAttempt  # an app's model: imported once apps are ready

    from verification import services as verification_services  # it depends on us

    username = user.username
    voice_consent_withdraw(user=user, actor=actor, reason="account_deleted")
    user.api_token_revoke()
    AccessAttempt.objects.filter(username=username).delete()
    # Unguessable, so no account created meanwhile (sign-up, admin) can already hold it.
    user.username = f"deleted-{user.pk}-{secrets.token_hex(4)}"
    user.email = user.first_name = user.last_name = ""
    user.is_active = user.is_staff = user.is_superuser = False
    user.set_unusable_password()  # also ends every session (their auth hash no longer matches)
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
    verification_services.audit_event_create(kind="account_deleted", user=user, actor=actor)
