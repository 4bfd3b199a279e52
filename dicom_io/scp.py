"""DICOM C-STORE / C-ECHO listener built on pynetdicom.

The network layer knows nothing of spools, databases or models: pynetdicom events are turned
into three calls on a `StorageHandler` (association requested, instance received, association
ended) that carry plain values. Whoever implements the handler decides who may connect, where
bytes go and what status to answer.

Received datasets are written by pynetdicom straight to a temporary file in `receive_dir`
(chunked receive), so a 50 MB radiograph is never held in memory, let alone twice; the handler
gets that file's path and may move it (same filesystem: a rename, no copy).
"""

from __future__ import annotations

import logging
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_io.guarded_server import GuardedAssociationServer
from dicom_io.sop import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES, StoreStatus, sop_class_name

log = logging.getLogger(__name__)

# Largest PDU we accept. Large PDUs cut per-PDU Python overhead on multi-MB images; 1 MiB
# keeps each read bounded.
MAX_PDU_BYTES = 1 << 20

# A-ASSOCIATE-RJ values (PS3.8 9.3.4).
_REJECTED_PERMANENT, _REJECTED_TRANSIENT = 0x01, 0x02
_SOURCE_SERVICE_USER = 0x01
_DIAG_NO_REASON, _DIAG_CALLING_AE_NOT_RECOGNISED = 0x01, 0x03


@dataclass(frozen=True)
class Peer:
    """Who is asking to associate."""

    calling_ae: str
    called_ae: str
    address: str
    port: int


@dataclass(frozen=True)
class Admission:
    """The handler's answer to an association request."""

    context: Any  # opaque to us; handed back with every later call for this association
    rejection: str | None = None  # None admits; a reason rejects (calling AE not recognised)


@dataclass(frozen=True)
class ReceivedFile:
    """One C-STORE request's dataset, as a DICOM Part 10 file on disk."""

    path: Path  # valid only during the call; move it to keep it
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


@dataclass(frozen=True)
class AssociationEnd:
    outcome: str  # "released", "aborted" or "rejected"
    reason: str | None = None
    refused_contexts: list[str] = field(default_factory=list)


class StorageHandler(Protocol):
    def association_requested(self, peer: Peer) -> Admission: ...

    def instance_received(self, context: Any, received: ReceivedFile) -> int: ...

    def association_ended(self, context: Any, end: AssociationEnd) -> None: ...


def build_ae(ae_title: str, max_associations: int, artim_timeout_s: float = 30.0) -> AE:
    """An AE that accepts Verification and our storage SOP classes, nothing else.
    `artim_timeout_s` bounds negotiation (pynetdicom's ACSE timeout is the ARTIM timer)."""
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = max_associations
    ae.acse_timeout = artim_timeout_s
    ae.maximum_pdu_size = MAX_PDU_BYTES
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    return ae


@dataclass
class _AssociationState:
    """What the listener keeps about one association between its events (instead of
    attributes set on pynetdicom's `Association`)."""

    context: Any  # the handler's, handed back with every later call
    rejection: str | None = None  # our own reason for refusing it
    refused: list[str] = field(default_factory=list)  # proposed SOP classes we did not accept
    outcome: str | None = None  # from pynetdicom's notifications: released, aborted, rejected


class _States:
    """Association states by association, shared by pynetdicom's handler threads."""

    def __init__(self) -> None:
        self._states: dict[int, _AssociationState] = {}
        self._lock = threading.Lock()

    def put(self, assoc: Any, state: _AssociationState) -> None:
        with self._lock:
            self._states[id(assoc)] = state

    def get(self, assoc: Any) -> _AssociationState | None:
        with self._lock:
            return self._states.get(id(assoc))

    def pop(self, assoc: Any) -> _AssociationState | None:
        with self._lock:
            return self._states.pop(id(assoc), None)


class StorageServer:
    """A running listener; `port` is the bound port (useful when asked for port 0)."""

    def __init__(
        self,
        handler: StorageHandler,
        *,
        ae_title: str,
        bind: str,
        port: int,
        max_associations: int,
        receive_dir: Path,
        per_peer_limit: int | None = None,
        artim_timeout_s: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._handler = handler
        self._states = _States()
        self._ae = build_ae(ae_title, max_associations, artim_timeout_s)
        self._address = (bind, port)
        self._receive_dir = receive_dir
        self._per_peer_limit = per_peer_limit or max_associations
        self._ssl_context = ssl_context  # set: this listener speaks only DICOM TLS
        self._server: GuardedAssociationServer | None = None

    def start(self) -> StorageServer:
        # pynetdicom writes chunked datasets with NamedTemporaryFile in the default temp dir;
        # pointing it at the spool's filesystem turns "keep this file" into a rename.
        # This is process-wide, which is why only the listener process sets it.
        self._receive_dir.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(self._receive_dir)
        _config.STORE_RECV_CHUNKED_DATASET = True
        # Handlers with bound arguments, as pynetdicom's own apps (qrscp) bind theirs.
        bound = [self._handler, self._states]
        handlers = [
            (evt.EVT_REQUESTED, _on_requested, bound),
            (evt.EVT_ACCEPTED, _on_accepted, [self._states]),
            (evt.EVT_REJECTED, _on_outcome, [self._states, "rejected"]),
            (evt.EVT_RELEASED, _on_outcome, [self._states, "released"]),
            (evt.EVT_ABORTED, _on_outcome, [self._states, "aborted"]),
            (evt.EVT_C_STORE, _on_store, bound),
            (evt.EVT_CONN_CLOSE, _on_closed, bound),
        ]
        server = self._ae.make_server(
            self._address, evt_handlers=handlers, server_class=GuardedAssociationServer,
            ssl_context=self._ssl_context,
            per_peer_limit=self._per_peer_limit, read_timeout_s=self._ae.network_timeout or 60.0,
        )
        # As AE.start_server(block=False) does, with our server class.
        self._ae._servers.append(server)
        name = "dicom-tls-listener" if self._ssl_context else "dicom-listener"
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        self._server = server
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


# -- pynetdicom event handlers: translate, delegate, never raise ---------------------------

def _on_requested(event: evt.Event, handler: StorageHandler, states: _States) -> None:
    assoc = event.assoc
    request = assoc.requestor.primitive  # the A-ASSOCIATE-RQ; negotiation has not run yet
    peer = Peer(
        calling_ae=str(request.calling_ae_title).strip(),
        called_ae=str(request.called_ae_title).strip(),
        address=str(assoc.requestor.address),
        port=int(assoc.requestor.port),
    )
    try:
        admission = handler.association_requested(peer)
    except Exception:
        log.exception("association request from %s could not be recorded", peer.address)
        _reject(assoc, _REJECTED_TRANSIENT, _DIAG_NO_REASON)
        return
    state = _AssociationState(admission.context, rejection=admission.rejection)
    states.put(assoc, state)
    if admission.rejection is not None:
        state.outcome = "rejected"
        _reject(assoc, _REJECTED_PERMANENT, _DIAG_CALLING_AE_NOT_RECOGNISED)


def _on_accepted(event: evt.Event, states: _States) -> None:
    state = states.get(event.assoc)
    if state is not None:
        rejected = event.assoc.rejected_contexts
        state.refused = sorted({sop_class_name(cx.abstract_syntax) for cx in rejected})


def _on_outcome(event: evt.Event, states: _States, outcome: str) -> None:
    state = states.get(event.assoc)
    if state is not None and state.outcome is None:
        state.outcome = outcome


def _on_store(event: evt.Event, handler: StorageHandler, states: _States) -> int:
    state = states.get(event.assoc)
    request = event.request
    received = ReceivedFile(
        path=Path(event.dataset_path),
        sop_class_uid=str(request.AffectedSOPClassUID),
        sop_instance_uid=str(request.AffectedSOPInstanceUID),
        transfer_syntax_uid=str(event.context.transfer_syntax),
    )
    try:
        return int(handler.instance_received(None if state is None else state.context,
                                             received))
    except Exception:
        log.exception("unexpected failure while storing an instance; answered 0xA7FF")
        return StoreStatus.INTERNAL_ERROR


def _on_closed(event: evt.Event, handler: StorageHandler, states: _States) -> None:
    assoc = event.assoc
    state = states.pop(assoc)
    if state is None:
        return  # the connection closed before an association was requested
    outcome = state.outcome or _outcome(assoc)
    end = AssociationEnd(
        outcome=outcome,
        reason=state.rejection or (_rejection_reason(assoc) if outcome == "rejected" else None),
        refused_contexts=state.refused,
    )
    try:
        handler.association_ended(state.context, end)
    except Exception:
        log.exception("could not record the end of an association")


def _reject(assoc: Any, result: int, diagnostic: int) -> None:
    """Send A-ASSOCIATE-RJ and wait until it is on the wire, as pynetdicom's own ACSE does;
    closing sooner makes the peer see an abort instead of a rejection."""
    assoc.acse.send_reject(result, _SOURCE_SERVICE_USER, diagnostic)
    assoc.kill()


def _outcome(assoc: Any) -> str:
    """For a connection that ended without a notification (the peer vanished)."""
    if assoc.is_rejected:
        return "rejected"
    if assoc.is_aborted:
        return "aborted"
    return "released"


def _rejection_reason(assoc: Any) -> str:
    """pynetdicom's own rejections (too many associations, no acceptable context)."""
    primitive = getattr(assoc.acceptor, "primitive", None)
    reason = getattr(primitive, "reason_str", None)
    return f"rejected by the DICOM layer: {reason}" if reason else "rejected by the DICOM layer"
