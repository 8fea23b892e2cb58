"""Where a webhook may be sent: public addresses only. A URL whose host is, or resolves to, a
loopback, private, link-local (the clouds' metadata service, 169.254.169.254), shared, reserved,
multicast or unspecified address is refused, unless WEBHOOK_ALLOW_PRIVATE is on (tests, a private
deployment). The check runs when an endpoint is registered and again at every delivery, on the
address then connected to (the name is resolved once and that address used), so a name that
changes its answer after registration (DNS rebinding) reaches nothing inside either."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(ValueError):
    pass


def _refusal(address: IPAddress) -> str | None:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved or not address.is_global:
        return "an address that is not public"
    return None


def check_address(address: str, host: str) -> None:
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    reason = _refusal(ipaddress.ip_address(address))
    if reason is not None:
        shown = host if host == address else f"{host} ({address})"
        raise AddressRefused(f"{shown} is {reason}; webhooks go to public addresses only.")


def resolve(host: str, port: int) -> list[str]:
    """Every address the host stands for (an address itself stands for itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"{host} cannot be resolved: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def check_url(url: str) -> None:
    """At registration: the scheme, no credentials, and a host that is, or resolves to, public
    addresses only. A name that does not resolve (yet) passes here; deliveries check it again."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise AddressRefused("Give an http:// or https:// URL.")
    if parts.username or parts.password:
        raise AddressRefused("Put no user name or password in the URL; the signature authenticates each delivery.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused("The URL's port is not a number from 0 to 65535.") from None
    try:
        addresses = resolve(parts.hostname, port)
    except OSError:
        return
    for address in addresses:
        check_address(address, parts.hostname)


def connect_address(host: str, port: int) -> str:
    """The address a delivery connects to: the first the host resolves to, every one checked."""
    addresses = resolve(host, port)
    for address in addresses:
        check_address(address, host)
    return addresses[0]
