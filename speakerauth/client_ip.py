"""The client's address, as the audit log and the password lockout see it."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or the VERIFICATION_PROXY_COUNT-th X-Forwarded-For entry from the right
    behind that many trusted proxies (Heroku's router: 1); None when that is no IP address.

    ``request``: a Django ``HttpRequest`` or a DRF ``Request`` (only ``META`` is read). Entries
    further left are the client's own claims, so they are never trusted."""
    candidate = request.META.get("REMOTE_ADDR", "")
    proxies = settings.VERIFICATION_PROXY_COUNT
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= proxies:
            candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
