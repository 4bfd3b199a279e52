"""pynetdicom's association server, guarded against peers that hold slots without working.

pynetdicom counts every open connection against `maximum_associations`, including ones that
never send a valid A-ASSOCIATE-RQ, and only refuses (A-ASSOCIATE-RJ "local limit exceeded")
once a request arrives. Measured: 25 malformed connections at a time from one host made every
legitimate association fail. Two defences, both before any DICOM is read:

- per-address cap: a connection from an address that already holds `per_peer_limit` open
  connections is closed at accept, so one misbehaving host cannot starve the PACS;
- the ARTIM timer (`AE.acse_timeout`, set by the caller) drops a connection that has not
  finished negotiating within seconds; malformed PDUs already end theirs at once (A-ABORT);
- a read timeout on every accepted socket, for a PDU that stops arriving halfway.

Accepting happens in the listener thread (no thread per connection: pynetdicom's handler only
starts the association's own thread), so the count seen by the next accept is exact.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

_REPORT_EVERY_S = 10.0


class GuardedAssociationServer(ThreadedAssociationServer):
    # socketserver's default backlog is 5: under a flood the legitimate peer's SYN is dropped
    # and TCP retries it 1 s, then 3 s later. Accepting and closing is cheap; queueing is too.
    request_queue_size = 512

    def __init__(self, *args: Any, per_peer_limit: int, read_timeout_s: float = 60.0,
                 **kwargs: Any) -> None:
        self.per_peer_limit = per_peer_limit
        self.read_timeout_s = read_timeout_s
        self._refused: dict[str, int] = {}
        self._reported_at = 0.0
        self._refused_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def connections_from(self, address: str) -> int:
        return sum(1 for assoc in self.active_associations
                   if assoc.requestor.address == address)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accepted sockets block forever by default: a PDU header announcing 4 GB followed
        by silence would hold its association thread (and slot) for good. A read that waits
        longer than `read_timeout_s` now ends the connection.

        On the TLS listener the handshake is not done here, in the one accepting thread
        (pynetdicom's way), where a peer that stalls mid-handshake would stop every other
        connection from being accepted: the socket is wrapped with the handshake deferred,
        and OpenSSL performs it on the association thread's first read, under the same
        timeout. A peer that speaks plain DICOM to it fails the handshake and is closed."""
        client, address = self.socket.accept()  # type: ignore[union-attr]
        client.settimeout(self.read_timeout_s)
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True,
                                                  do_handshake_on_connect=False)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Over its share, a peer's connection is closed at accept, while slots are left for
        the others. Once every slot is taken, pynetdicom answers instead, with the
        A-ASSOCIATE-RJ "rejected-transient, local limit exceeded" a PACS knows to retry."""
        address = str(client_address[0])
        if self.connections_from(address) < self.per_peer_limit:
            return True
        if len(self.active_associations) >= self.ae.maximum_associations:
            return True
        self._note_refusal(address)
        return False

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the association in this (the accept) thread: it only spawns the association's
        own reactor thread, and doing it here makes the next `verify_request` count it."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_RDWR)
        request.close()

    def _note_refusal(self, address: str) -> None:
        """A flood must not flood the log: one line per address every few seconds."""
        with self._refused_lock:
            self._refused[address] = self._refused.get(address, 0) + 1
            now = time.monotonic()
            if now - self._reported_at < _REPORT_EVERY_S:
                return
            self._reported_at = now
            refused, self._refused = self._refused, {}
        for peer, count in refused.items():
            log.warning("closed %d connection(s) from %s at accept: it already holds %d "
                        "(BONEAGE_MAX_ASSOCIATIONS_PER_PEER)", count, peer, self.per_peer_limit)
