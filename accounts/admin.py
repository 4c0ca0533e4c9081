from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html

from accounts.deletion import account_delete
from accounts.models import User


@admin.register(User)
class SpeakerAuthUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "verification_review")
    actions = ("delete_and_anonymise",)

    def has_delete_permission(self, request, obj=None):
        # A user with audit history cannot be deleted (the audit log PROTECTs it): accounts go
        # by the anonymising deletion below, not by Django's, which would fail or leave no trace.
        return False

    @admin.action(description="Delete selected accounts (anonymised; the audit log keeps its rows)")
    def delete_and_anonymise(self, request, queryset):
        done = 0
        for user in queryset.exclude(pk=request.user.pk).filter(is_active=True):
            account_delete(user=user, actor=request.user)
            done += 1
        skipped = queryset.count() - done
        self.message_user(request, f"{done} account(s) deleted and anonymised.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} skipped (your own, or already deleted).", messages.WARNING
            )

    @admin.display(description="voice")
    def verification_review(self, obj: User):
        # The per-user review (enrollment, lockout with its reset, attempts) lives in the
        # verification admin.
        url = reverse("admin:verification_user_review", args=[obj.pk])
        return format_html('<a href="{}">review</a>', url)
