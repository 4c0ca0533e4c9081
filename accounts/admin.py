from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import User


@admin.register(User)
class SpeakerAuthUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "verification_review")

    @admin.display(description="voice")
    def verification_review(self, obj: User):
        # The per-user review (enrollment, lockout with its reset, attempts) lives in the
        # verification admin.
        url = reverse("admin:verification_user_review", args=[obj.pk])
        return format_html('<a href="{}">review</a>', url)
