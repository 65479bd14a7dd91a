"""This replica among others on a shared store (`STORE_URL`): whose sessions are whose.

Every session is held by one replica at a time, through a lease with a fencing epoch
(`_leases`): the holder alone runs the session (its sideband, tools, extractions) and writes
its record. Any replica answers for any session:

- a read (`GET /session/{id}`) comes from the stored record, with the holder named;
- a request that changes the session, arriving where it is not held, takes the session over:
  the holder is asked through its inbox to hand it over, writes its record, closes its sideband
  and passes the lease on in one step (`LeaseTable.transfer`), and the session carries on here.
  One mechanism thus serves requests, crashes and deploys, and a session's state never has two
  writers;
- a replica that dies stops renewing its leases; the others find its sessions among the
  orphans (`LeaseTable.orphans`) and take them over, each a share, re-attaching their
  sidebands; a replica that stops (SIGTERM) releases its leases so they are taken at once.

Records are written in batches (`WRITE_BATCH_SECONDS`): a sideband event costs no store round
trip. When the store is away, writes wait and are retried; live calls carry on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import trio

from ._errors import SessionMoving, StoreUnavailable
from ._inbox import Inbox
from ._lease_keeper import Hold, LeaseKeeper
from ._leases import LeaseTable
from ._records import RecordTable
from ._store import SessionRecord, record_to_json

logger = logging.getLogger("realtime_trio.replica")

T = TypeVar("T")

# How long a batch of record writes gathers before it goes out in one round trip.
WRITE_BATCH_SECONDS = 0.05
# How often a replica reads its inbox, and looks for sessions nobody holds.
INBOX_POLL_SECONDS = 0.05
TAKEOVER_SCAN_SECONDS = 0.5
ORPHANS_SCANNED = 1000
CALM_SECONDS = 2.0
# Sessions restored at once by one replica (each loads a record and opens a sideband).
RESTORES_AT_ONCE = 16
# How long a request waits for the holder to hand its session over, past which it answers 503.
HANDOVER_WAIT_SECONDS = 2.0
MESSAGE_TTL_SECONDS = 5.0
# A record outlives its session's idle TTL by this much (a replica ends idle sessions itself;
# the expiry collects what a dead replica left behind). No TTL: kept this long.
RECORD_MARGIN_SECONDS = 60.0
RECORD_KEEP_SECONDS = 7 * 24 * 3600.0
# Retrying writes while the store is away: from the batch period up to this.
WRITE_RETRY_MAX_SECONDS = 1.0


class SharedRateLimiter(Protocol):
    async def check(self, identity: str) -> float | None:
        """None when the request may pass, else the seconds until it would."""
        ...


@dataclass(frozen=True)
class StoreTables:
    """A shared store's tables, and what talking to it can raise when it is away."""

    kind: str
    leases: LeaseTable
    records: RecordTable
    inbox: Inbox
    ping: Callable[[], Awaitable[object]]
    errors: tuple[type[BaseException], ...]
    rate_limiter: Callable[[int, int], SharedRateLimiter]  # (per minute, burst)


class HeldSession(Protocol):
    """What the replica needs of a session it holds."""

    session_id: str
    record: SessionRecord

    def sideband_view(self) -> dict[str, Any]: ...

    def touch(self) -> None: ...


class ReplicaHost(Protocol):
    """The session manager, as the replica sees it."""

    def local(self, session_id: str) -> HeldSession | None: ...

    def has_room(self) -> bool: ...

    async def adopt(self, hold: Hold, record: dict[str, Any]) -> None:
        """Run the stored session *record* here under *hold*, re-attaching its call."""

    async def let_go(self, session_id: str) -> None:
        """Stop running the session here (its sideband closed, no hang-up), record kept."""


class Replica:
    """This replica's part in a shared store: its leases, batched writes, inbox and takeovers.

    Args:
        tables: the store.
        name: this replica's name (`REPLICA_ID`): an incarnation, new at every start.
        lease_seconds: `SIDEBAND_LEASE_SECONDS`.
        record_ttl_seconds: how long a record lives unwritten (the idle TTL and a margin).
    """

    def __init__(
        self, tables: StoreTables, *, name: str, lease_seconds: float, record_ttl_seconds: float
    ) -> None:
        self.tables = tables
        self.name = name
        self.lease_seconds = lease_seconds
        self.record_ttl_seconds = record_ttl_seconds
        self.keeper = LeaseKeeper(
            tables.leases, name, lease_seconds, on_store_error=self._store_failed
        )
        self.store_reachable = True
        self._dirty: dict[str, HeldSession] = {}
        self._wake_writer = trio.Event()
        self._restoring: dict[str, trio.Event] = {}
        self._stopping = False

    # -- talking to the store ----------------------------------------------------------

    async def call(self, work: Awaitable[T]) -> T:
        """*work* against the store; the store being away becomes `StoreUnavailable`."""
        try:
            result = await work
        except self.tables.errors as exc:
            self._store_failed(exc)
            raise StoreUnavailable() from None
        self.store_reachable = True
        return result

    def _store_failed(self, exc: BaseException) -> None:
        if self.store_reachable:
            logger.warning("the session store is unreachable: %s", type(exc).__name__)
        self.store_reachable = False

    async def ready(self) -> bool:
        """Whether the store answers now (`/readyz`)."""
        try:
            await self.call(self.tables.ping())
        except StoreUnavailable:
            return False
        return True

    # -- running --------------------------------------------------------------------------

    async def run(
        self, host: ReplicaHost, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep leases, write records, read the inbox and take over orphans, until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.keeper.run)
            nursery.start_soon(self._write_batches)
            nursery.start_soon(self._read_inbox, host, nursery)
            nursery.start_soon(self._take_over_orphans, host, nursery)
            task_status.started()

    def holds(self, session_id: str) -> Hold | None:
        return self.keeper.hold_of(session_id)

    async def take_new(self, session_id: str) -> Hold:
        """Hold a new session (its id was just made)."""
        hold = await self.call(self.keeper.take(session_id))
        if hold is None:
            raise RuntimeError(f"a new session id is already held: {session_id}")
        return hold

    async def create_record(self, hold: Hold, record: SessionRecord, view: dict[str, Any]) -> None:
        document = _stored(record, view, self.name)
        await self.call(
            self.tables.records.create(record.session_id, document, self.record_ttl_seconds)
        )

    async def forget(self, hold: Hold) -> None:
        """The session ended: its record goes, and it is never offered for takeover."""
        self._dirty.pop(hold.lease.session_id, None)
        self.keeper.drop(hold)
        with trio.move_on_after(self.lease_seconds):
            try:
                await self.call(self.tables.records.remove(hold.lease.session_id))
                await self.call(self.tables.leases.forget(hold.lease))
            except StoreUnavailable:
                logger.warning(
                    "session %s ended while the store was away: its record expires by itself",
                    hold.lease.session_id,
                )

    # -- reading a session held anywhere -------------------------------------------------------

    async def load(self, session_id: str) -> tuple[dict[str, Any], str | None] | None:
        """The stored record of *session_id* and the replica holding it, or None."""
        record = await self.call(self.tables.records.load(session_id))
        if record is None:
            return None
        holder = await self.call(self.tables.leases.holder(session_id))
        return record, holder.replica if holder is not None else None

    async def touch(self, session_id: str, holder: str) -> None:
        """Tell *holder* its session was used here (its idle TTL starts again)."""
        if holder != self.name:
            message = {"op": "touch", "session": session_id}
            with contextlib.suppress(StoreUnavailable):  # a read still answers
                await self.call(self.tables.inbox.send(holder, message, MESSAGE_TTL_SECONDS))

    # -- claiming a session for a request ------------------------------------------------

    async def claim(self, session_id: str) -> Hold | None:
        """Hold *session_id* here so a request can change it: take it if nobody holds it, else
        ask its holder to hand it over. None: no such session.

        Raises:
            SessionMoving: its holder neither handed it over nor let its lease run out in time.
            StoreUnavailable: the store is away.
        """
        waiting = self._restoring.get(session_id)
        if waiting is not None:  # being taken over here already
            await waiting.wait()
            return self.holds(session_id)
        deadline = trio.current_time() + self.lease_seconds + HANDOVER_WAIT_SECONDS
        asked: tuple[str, int] | None = None
        while trio.current_time() < deadline:
            if await self.call(self.tables.records.load(session_id)) is None:
                return None
            hold = await self.call(self.keeper.take(session_id))
            if hold is not None:
                return hold
            holder = await self.call(self.tables.leases.holder(session_id))
            if holder is not None and holder.replica == self.name:
                # Handed to this replica (or held here already): keep the hold there is.
                return self.holds(session_id) or self.keeper.adopt(holder)
            if holder is not None and asked != (holder.replica, holder.epoch):
                asked = (holder.replica, holder.epoch)
                message = {"op": "handover", "session": session_id, "to": self.name}
                await self.call(
                    self.tables.inbox.send(holder.replica, message, HANDOVER_WAIT_SECONDS)
                )
            await trio.sleep(INBOX_POLL_SECONDS)
        raise SessionMoving()

    def restoring(self, session_id: str) -> trio.Event:
        """Mark *session_id* as being restored here; set the event when done."""
        event = self._restoring[session_id] = trio.Event()
        return event

    def restored(self, session_id: str) -> None:
        event = self._restoring.pop(session_id, None)
        if event is not None:
            event.set()

    # -- writing records ------------------------------------------------------------------

    def changed(self, session: HeldSession) -> None:
        """*session*'s record changed: it goes out with the next batch."""
        self._dirty[session.session_id] = session
        self._wake_writer.set()

    async def flush(self, session: HeldSession) -> bool:
        """Write *session*'s record now (before handing it over); False if refused or away."""
        self._dirty.pop(session.session_id, None)
        hold = self.holds(session.session_id)
        if hold is None:
            return False
        try:
            saved = await self.call(
                self.tables.records.save_many(
                    [(session.session_id, _document(session, self.name), hold.lease)],
                    self.record_ttl_seconds,
                )
            )
        except StoreUnavailable:
            return False
        return saved == [True]

    async def _write_batches(self) -> None:
        retry = WRITE_BATCH_SECONDS
        while True:
            await self._wake_writer.wait()
            await trio.sleep(WRITE_BATCH_SECONDS)  # let the batch gather
            self._wake_writer = trio.Event()
            batch, self._dirty = self._dirty, {}
            items, sessions = [], []
            for session_id, session in batch.items():
                hold = self.holds(session_id)
                if hold is not None:
                    items.append((session_id, _document(session, self.name), hold.lease))
                    sessions.append(session)
            if not items:
                continue
            try:
                saved = await self.call(
                    self.tables.records.save_many(items, self.record_ttl_seconds)
                )
            except StoreUnavailable:
                # Kept for the next try (a newer change of the same session wins).
                self._dirty = {**batch, **self._dirty}
                self._wake_writer.set()
                await trio.sleep(retry)
                retry = min(retry * 2, WRITE_RETRY_MAX_SECONDS)
                continue
            retry = WRITE_BATCH_SECONDS
            for session, ok in zip(sessions, saved, strict=True):
                if not ok:
                    self._lost(session.session_id, "its record write was refused")

    def _lost(self, session_id: str, why: str) -> None:
        hold = self.holds(session_id)
        if hold is None:
            return
        logger.warning("session %s: no longer held here (%s)", session_id, why)
        self.keeper.drop(hold)
        hold.lost.set()

    # -- the inbox ------------------------------------------------------------------------

    async def _read_inbox(self, host: ReplicaHost, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(INBOX_POLL_SECONDS)
            try:
                messages = await self.call(self.tables.inbox.receive(self.name))
            except StoreUnavailable:
                await trio.sleep(WRITE_RETRY_MAX_SECONDS)
                continue
            for message in messages:
                op, session_id = message.get("op"), message.get("session")
                if not isinstance(session_id, str):
                    continue
                if op == "touch":
                    session = host.local(session_id)
                    if session is not None:
                        session.touch()
                elif op == "handover" and isinstance(message.get("to"), str):
                    nursery.start_soon(self._hand_over, host, session_id, message["to"])

    async def _hand_over(self, host: ReplicaHost, session_id: str, to: str) -> None:
        """Pass *session_id* to replica *to*: sideband closed, record written, then the lease
        moved in one step, so there is never a moment with two sidebands or none held."""
        restoring = self._restoring.get(session_id)
        if restoring is not None:  # taken over here a moment ago: hand over what runs
            await restoring.wait()
        hold = self.holds(session_id)
        if hold is None or self._stopping:
            return
        session = host.local(session_id)
        if session is not None:
            # Its sideband closed first, so the record written next holds all it heard; the
            # lease is renewed meanwhile, so it is still this replica's to pass on.
            await host.let_go(session_id)
            await self.flush(session)
        self.keeper.drop(hold)
        try:
            moved = await self.call(self.tables.leases.transfer(hold.lease, to, self.lease_seconds))
        except StoreUnavailable:
            moved = None
        if moved is None:
            logger.warning("session %s: could not hand it over to %s", session_id, to)
        else:
            logger.info("session %s: handed over to %s (epoch %d)", session_id, to, moved.epoch)

    # -- taking over ----------------------------------------------------------------------

    async def _take_over_orphans(self, host: ReplicaHost, nursery: trio.Nursery) -> None:
        limiter = trio.CapacityLimiter(RESTORES_AT_ONCE)
        calm_until, away = 0.0, False
        while True:
            await trio.sleep(TAKEOVER_SCAN_SECONDS)
            if self._stopping:
                continue
            try:
                alive = await self.call(
                    self.tables.leases.heartbeat(self.name, 2 * self.lease_seconds)
                )
                orphans = await self.call(self.tables.leases.orphans(ORPHANS_SCANNED))
            except StoreUnavailable:
                away = True
                continue
            if away:
                # Back after an outage, every lease may have run out meanwhile: their holders,
                # reconnecting too, get two lease periods to take them back before anything
                # counts as an orphan.
                away = False
                calm_until = trio.current_time() + 2 * self.lease_seconds + CALM_SECONDS
            if trio.current_time() < calm_until:
                continue
            orphans = [s for s in orphans if s not in self._restoring and not self.holds(s)]
            if not orphans:
                continue
            # Each survivor takes its share: the others take the rest in the same round.
            random.shuffle(orphans)
            share = math.ceil(len(orphans) / max(1, alive))
            for session_id in orphans[:share]:
                if not host.has_room():
                    break
                try:
                    hold = await self.call(self.keeper.take(session_id))
                except StoreUnavailable:
                    break
                if hold is not None:
                    self.restoring(session_id)
                    nursery.start_soon(self._restore, host, hold, limiter)

    async def _restore(self, host: ReplicaHost, hold: Hold, limiter: trio.CapacityLimiter) -> None:
        session_id = hold.lease.session_id
        try:
            async with limiter:
                record = await self.call(self.tables.records.load(session_id))
                if record is None:  # it expired while unheld: nothing to take over
                    await self.forget(hold)
                    return
                await host.adopt(hold, record)
                logger.info("session %s: taken over (epoch %d)", session_id, hold.lease.epoch)
        except StoreUnavailable:
            self.keeper.drop(hold)  # its lease runs out; another round takes it
        except Exception:
            logger.exception("session %s: could not take it over", session_id)
            self.keeper.drop(hold)
        finally:
            self.restored(session_id)

    # -- stopping -------------------------------------------------------------------------

    async def hand_over_all(self, sessions: Sequence[HeldSession]) -> None:
        """A stopping replica: write every record, then (its sidebands closed by the caller)
        release every lease so the other replicas take them over at once."""
        self._stopping = True
        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(self.flush, session)

    async def release_all(self) -> None:
        try:
            await self.call(self.keeper.give_up_all())
        except StoreUnavailable:
            logger.warning("could not release sideband leases: they run out by themselves")


def _document(session: HeldSession, writer: str) -> dict[str, Any]:
    return _stored(session.record, session.sideband_view(), writer)


def _stored(record: SessionRecord, sideband: dict[str, Any], writer: str) -> dict[str, Any]:
    """The record as stored, with its sideband's state as *writer* (its holder) saw it."""
    return {**record_to_json(record), "sideband": {**sideband, "replica": writer}}


def stored_sideband(document: dict[str, Any], holder: str | None) -> dict[str, Any]:
    """The sideband as a replica that does not hold it shows it: as its holder last wrote it,
    unless the holder changed since (then it is being attached by the new one)."""
    view = document.get("sideband")
    view = dict(view) if isinstance(view, dict) else {"state": "idle"}
    writer = view.pop("replica", None)
    if view.get("state") not in ("idle", None) and writer != holder:
        view = {"state": "connecting"}
    return {**view, "replica": holder}
