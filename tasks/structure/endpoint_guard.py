"""Where report text may be sent: refuse an LLM endpoint that is neither loopback nor allow-listed.

``check_endpoint(base_url, settings)`` runs before the LLM backend (``tasks.structure.llm``) creates a client.
A loopback endpoint (127.0.0.0/8, ::1, ``localhost``) or a host on ``settings.llm.allowed_hosts`` (hostnames,
IP addresses or CIDR networks, e.g. the hospital's vLLM box) is allowed; anything else raises
``RemoteLLMRefused`` unless ``settings.llm.allow_remote_llm`` is set, and even then only over https.
Hostnames are compared as written, never resolved: a name that merely resolves to 127.0.0.1 is not trusted as
loopback. What is sent is scrubbed first (``tasks.structure.phi_scrubber``); this guard is the other half.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from data_contracts.errors import UsageError

if TYPE_CHECKING:
    from data_contracts.settings import Settings


class RemoteLLMRefused(UsageError):
    """The configured LLM endpoint is neither loopback nor allow-listed, and remote LLMs are not allowed."""


class BadEndpoint(UsageError):
    """``llm.base_url`` is not an http(s) URL with a host."""


def check_endpoint(base_url: str, settings: Settings) -> str:
    """Allow ``base_url`` or raise; returns why it is allowed: ``loopback``, ``allow-listed`` or ``remote``."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise BadEndpoint(f"LLM base_url is not an http(s) URL with a host: {parts.scheme}://{host}",
                          reason="llm_config", hint="set PETCAP_LLM__BASE_URL, e.g. http://127.0.0.1:8000/v1")
    if _is_loopback(host):
        return "loopback"
    if _allow_listed(host, settings.llm.allowed_hosts):
        return "allow-listed"
    if not settings.llm.allow_remote_llm:
        raise RemoteLLMRefused(
            f"refusing to send report text to {host!r}: it is not loopback and not on llm.allowed_hosts",
            reason="remote_llm_refused",
            hint="run the model inside the hospital (vllm serve) and point llm.base_url at it, add the host to "
                 "PETCAP_LLM__ALLOWED_HOSTS, or set PETCAP_LLM__ALLOW_REMOTE_LLM=true if sending scrubbed "
                 "reports to this service is permitted")
    if parts.scheme != "https":
        raise RemoteLLMRefused(f"refusing to send report text to remote host {host!r} over plain http",
                               reason="remote_llm_refused", hint="use https")
    return "remote"
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1
    return ip


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _allow_listed(host: str, allowed: tuple[str, ...]) -> bool:
    ip = _ip(host)
    for entry in allowed:
        entry = entry.strip().rstrip(".").lower()
        if not entry:
            continue
        if entry == host:
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif ip is not None and _ip(entry) == ip:
            return True
    return False
