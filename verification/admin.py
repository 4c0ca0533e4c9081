"""Admin review of verification (issue 6): the audit log, read-only; per-user state with an
audited lockout reset; staff labels; CSV export; the staff dashboard.

Audit rows are view-only here for everyone, superusers included (the database refuses UPDATE
and DELETE anyway). Every write this admin makes goes through ``services`` and is itself audited.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from verification import reports, selectors, services
from verification.models import (
    AttemptLabel,
    AuditEvent,
    BackgroundModel,
    SpeakerModel,
    VerificationAttempt,
)

CSV_COLUMNS = (
    "seq",
    "id",
    "created_at",
    "username",
    "decision",
    "reason",
    "score",
    "threshold",
    "frame_count",
    "speaker_model_version",
    "ubm_version",
    "client_ip",
    "user_agent",
    "latency_ms",
    "label",
    "entry_hash",
)
RECENT_ATTEMPTS = 20


class _Echo:
    """csv.writer target that hands each line back instead of buffering the file."""

    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    """Spreadsheet-safe text: a cell starting with = + - @ (a user agent is attacker-chosen)
    would run as a formula in Excel/LibreOffice, so it is quoted with a leading apostrophe."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_rows(attempts: Iterable[VerificationAttempt]) -> Iterator[list[str]]:
    yield list(CSV_COLUMNS)
    for a in attempts:
        label = getattr(a, "label", None)
        yield [
            _cell(v)
            for v in (
                a.seq,
                a.pk,
                a.created_at.isoformat(),
                a.user.get_username(),
                a.decision,
                a.reason,
                a.score,
                a.threshold,
                a.frame_count,
                a.speaker_model_version,
                a.ubm_version,
                a.client_ip,
                a.user_agent,
                a.latency_ms,
                label.truth if label else "",
                a.entry_hash,
            )
        ]


def csv_response(queryset, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    rows = queryset.select_related("user", "label").order_by("seq").iterator(chunk_size=2000)
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in csv_rows(rows)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ReadOnlyAuditAdmin(admin.ModelAdmin):
    """View-only for everyone: no add, no change, no delete (hence no delete action)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(VerificationAttempt)
class VerificationAttemptAdmin(ReadOnlyAuditAdmin):
    list_display = (
        "seq",
        "created_at",
        "user_link",
        "decision",
        "reason",
        "score_short",
        "threshold_short",
        "ubm_version",
        "label_truth",
        "client_ip",
    )
    list_display_links = ("seq",)
    list_filter = (
        "decision",
        "reason",
        ("created_at", admin.DateFieldListFilter),
        ("label__truth", admin.AllValuesFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("user__username", "user__email", "client_ip", "ubm_version", "entry_hash")
    date_hierarchy = "created_at"
    list_select_related = ("user", "label")
    list_per_page = 50
    actions = ("export_csv", "label_genuine", "label_impostor")
    fields = (
        "seq",
        "created_at",
        "user",
        "decision",
        "reason",
        "score",
        "threshold",
        "frame_count",
        "challenge",
        "speaker_model_version",
        "background_model",
        "ubm_version",
        "client_ip",
        "user_agent",
        "latency_ms",
        "label_truth",
        "prev_hash",
        "entry_hash",
    )
    readonly_fields = fields

    @admin.display(description="user", ordering="user__username")
    def user_link(self, obj: VerificationAttempt):
        url = reverse("admin:verification_user_review", args=[obj.user_id])
        return format_html('<a href="{}">{}</a>', url, obj.user.get_username())

    @admin.display(description="score", ordering="score")
    def score_short(self, obj: VerificationAttempt) -> str:
        return "—" if obj.score is None else f"{obj.score:.3f}"

    @admin.display(description="threshold", ordering="threshold")
    def threshold_short(self, obj: VerificationAttempt) -> str:
        return "—" if obj.threshold is None else f"{obj.threshold:.3f}"

    @admin.display(description="label", ordering="label__truth")
    def label_truth(self, obj: VerificationAttempt) -> str:
        label = getattr(obj, "label", None)
        return label.truth if label else "—"

    # -- actions ------------------------------------------------------------------------------

    @admin.action(description="Export selected attempts as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return csv_response(queryset, "attempts-selected.csv")

    def _label(self, request, queryset, truth: str) -> None:
        for attempt in queryset.select_related("user"):
            services.attempt_label_set(attempt=attempt, truth=truth, actor=request.user)
        self.message_user(request, f"Labelled {queryset.count()} attempt(s) {truth}.")

    def has_label_permission(self, request) -> bool:
        return request.user.has_perm("verification.add_attemptlabel")

    @admin.action(description="Label selected attempts: genuine (the user)", permissions=["label"])
    def label_genuine(self, request, queryset):
        self._label(request, queryset, AttemptLabel.Truth.GENUINE)

    @admin.action(description="Label selected attempts: impostor", permissions=["label"])
    def label_impostor(self, request, queryset):
        self._label(request, queryset, AttemptLabel.Truth.IMPOSTOR)

    # -- extra pages --------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="verification_dashboard"),
            path("export.csv", wrap(self.export_view), name="verification_attempts_csv"),
            path("user/<int:user_id>/", wrap(self.user_view), name="verification_user_review"),
            path(
                "user/<int:user_id>/reset-lockout/",
                wrap(require_POST(self.reset_lockout_view)),
                name="verification_reset_lockout",
            ),
            *super().get_urls(),
        ]

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def export_view(self, request: HttpRequest):
        """The change list's current filter and search (same query string), as CSV."""
        self._require_view(request)
        changelist: ChangeList = self.get_changelist_instance(request)
        return csv_response(changelist.get_queryset(request), "attempts.csv")

    def changelist_view(self, request, extra_context=None):
        query = request.GET.urlencode()
        export = reverse("admin:verification_attempts_csv") + (f"?{query}" if query else "")
        context = {"export_url": export, "dashboard_url": reverse("admin:verification_dashboard")}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def dashboard_view(self, request: HttpRequest):
        self._require_view(request)
        data = reports.dashboard_data()
        context = {
            **self.admin_site.each_context(request),
            "title": "Verification dashboard",
            "opts": self.model._meta,
            "data": data,
            "changelist_url": reverse("admin:verification_verificationattempt_changelist"),
        }
        return TemplateResponse(request, "admin/verification/dashboard.html", context)

    def user_view(self, request: HttpRequest, user_id: int):
        self._require_view(request)
        user = get_object_or_404(get_user_model(), pk=user_id)
        status = selectors.enrollment_status(user=user)
        lockout = selectors.verification_lockout_get(user=user)
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Verification review: {user.get_username()}",
            "opts": self.model._meta,
            "subject": user,
            "status": status,
            "lockout": lockout,
            "locked": bool(lockout and lockout.locked_until and lockout.locked_until > now),
            "active_ubm": selectors.background_model_active(),
            "attempts": VerificationAttempt.objects.filter(user=user)
            .select_related("label")
            .order_by("-seq")[:RECENT_ATTEMPTS],
            "events": AuditEvent.objects.filter(user=user)
            .select_related("actor")
            .order_by("-seq")[:RECENT_ATTEMPTS],
            "changelist_url": reverse("admin:verification_verificationattempt_changelist")
            + f"?user__id__exact={user.pk}",
        }
        return TemplateResponse(request, "admin/verification/user_review.html", context)

    def reset_lockout_view(self, request: HttpRequest, user_id: int):
        # Resetting is a write on lockout state, never on the audit rows: it needs the change
        # permission of VerificationLockout, which staff get explicitly (superusers have it).
        if not request.user.has_perm("verification.change_verificationlockout"):
            raise PermissionDenied
        user = get_object_or_404(get_user_model(), pk=user_id)
        services.verification_lockout_reset(user=user, actor=request.user)
        messages.success(request, f"Lockout of {user.get_username()} reset (audited).")
        return HttpResponseRedirect(reverse("admin:verification_user_review", args=[user.pk]))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAuditAdmin):
    list_display = ("seq", "created_at", "kind", "user", "actor", "details")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__username", "actor__username")
    date_hierarchy = "created_at"
    list_select_related = ("user", "actor")
    fields = ("seq", "created_at", "kind", "user", "actor", "details", "prev_hash", "entry_hash")
    readonly_fields = fields


@admin.register(AttemptLabel)
class AttemptLabelAdmin(ReadOnlyAuditAdmin):
    """Labels are set with the attempt list's actions (audited); listed here for review."""

    list_display = ("attempt", "truth", "labelled_by", "updated_at")
    list_filter = ("truth",)
    search_fields = ("attempt__user__username", "labelled_by__username")
    list_select_related = ("attempt__user", "labelled_by")


@admin.register(BackgroundModel)
class BackgroundModelAdmin(ReadOnlyAuditAdmin):
    list_display = ("version", "feature_version", "threshold", "is_active", "created_at")
    exclude = ("blob",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("blob")


@admin.register(SpeakerModel)
class SpeakerModelAdmin(ReadOnlyAuditAdmin):
    list_display = ("user", "version", "background_model", "utterance_count", "trained_at")
    search_fields = ("user__username",)
    list_select_related = ("user", "background_model")
    exclude = ("blob",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("blob", "background_model__blob")
