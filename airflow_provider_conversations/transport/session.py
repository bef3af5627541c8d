"""The keep-alive session of one hook and how a GET leaves it: fixed headers, same-host redirects only.

``Session.get`` would merge the session's settings into every request (a measurable share of a fast page loop:
they are fixed when the session is created) and would follow a redirect to any host with the vendor's API-key
header, which requests strips only when it is ``Authorization`` (``Session.rebuild_auth``). So each request is
prepared once with the session's headers and sent with ``allow_redirects=False``; a redirect is followed only
within the API's own host (or from http to https on it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_conversations import __version__
from airflow_provider_conversations.exceptions import VendorAPIError

#: Query parameters in the form ``requests`` accepts: repeated parameters are lists.
Params = dict[str, str | list[str]]
USER_AGENT = f"airflow-provider-conversations/{__version__} python-requests/{requests.__version__}"
#: Redirects followed within the API's host (e.g. http to https) before giving up.
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Label:
    """Who a request talks to, for messages and exceptions: the vendor, its display name, the connection."""

    vendor: str
    name: str
    conn_id: str


def new_session(base_url: str, headers: Mapping[str, str], *, verify: bool) -> requests.Session:
    """A keep-alive session with the vendor's headers, its proxies and CA bundle read once.

    Proxy and CA-bundle environment variables are read here instead of on every request (requests re-scans
    ``os.environ`` per call). No ``.netrc``: credentials come from the Airflow connection only.
    """
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    session.headers.update(headers)
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(base_url)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = (ca_bundle or True) if verify else False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(session: requests.Session, url: str, params: Params, *, timeout: float | tuple[float, float],
         label: Label) -> requests.Response:
    """One GET, following redirects only within the API's own host; raises VendorAPIError otherwise."""
    request = requests.PreparedRequest()
    request.prepare(method="GET", url=url, params=params, headers=session.headers)
    for _ in range(MAX_REDIRECTS + 1):
        response = session.send(request, allow_redirects=False, timeout=timeout, proxies=session.proxies)
        if not response.is_redirect:
            return response
        current = request.url or url  # (always set once prepared; typed optional by requests)
        target = urljoin(current, response.headers["location"])
        response.close()
        if not same_host(current, target):
            raise VendorAPIError(
                f"{label.name} answered HTTP {response.status_code} redirecting to "
                f"{urlsplit(target)._replace(query='', fragment='').geturl()} (connection {label.conn_id!r}); "
                "redirects to another host are not followed, so the API key is never sent there: set the "
                "connection's Host to the base URL the vendor redirects to",
                vendor=label.vendor, status=response.status_code,
            )
        request = request.copy()
        request.prepare_url(target, None)
    raise VendorAPIError(
        f"{label.name} redirected more than {MAX_REDIRECTS} times in a row (connection {label.conn_id!r})",
        vendor=label.vendor, status=response.status_code,
    )


def same_host(url: str, target: str) -> bool:
    """Same host and port, or the same host upgraded from http to https (never a downgrade)."""
    a, b = urlsplit(url), urlsplit(target)
    if a.scheme == b.scheme:
        return a.netloc.lower() == b.netloc.lower()
    return a.scheme == "http" and b.scheme == "https" and a.hostname == b.hostname


__all__ = ["MAX_REDIRECTS", "USER_AGENT", "Label", "Params", "new_session", "same_host", "send"]
