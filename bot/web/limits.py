"""Per-client rate limits for the web front, in memory (one ``spsbot serve`` process).

A sliding window per (bucket, client): at most ``limit`` hits in ``window`` seconds. Memory is
bounded: each bucket remembers at most ``max_clients`` clients, the least recently seen are
forgotten first. Clients are keyed by their network as the server sees it (the reverse proxy's
``X-Forwarded-For`` when it is trusted, see ``client_key``); addresses are never written to disk.
The per-mailbox limit on sign-up e-mails lives in the database instead
(``bot.digest.confirmations``), so it holds across restarts.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque


class RateLimiter:
    def __init__(self, max_clients: int = 10_000, clock=time.monotonic):
        self.max_clients = max_clients
        self.clock = clock
        self._hits: dict[str, OrderedDict[str, deque]] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str, client: str, limit: int, window: float) -> float:
        """Count one hit; return 0 when allowed, else the seconds until the next one would be."""
        now = self.clock()
        with self._lock:
            clients = self._hits.setdefault(bucket, OrderedDict())
            times = clients.pop(client, None) or deque()
            clients[client] = times  # most recently seen last
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) >= limit:
                return max(times[0] + window - now, 0.001)
            times.append(now)
            while len(clients) > self.max_clients:
                clients.popitem(last=False)
            return 0.0


def client_key(address: str | None) -> str:
    """The network a client's address stands for: an IPv4 address itself, an IPv6 address's /64
    (one subscriber line gets a whole /64, so one person can use 2^64 addresses), and an
    IPv4-mapped IPv6 address (``::ffff:192.0.2.7``) as the IPv4 address it maps."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return address or "unknown"  # a unix socket or a proxy's odd value: keyed as given
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))
