"""Central's authority rules against authenticated attackers, on a real Central process.

Every attacker here has logged in properly and speaks the real protocol (``common.client``);
what it tries is to act on somebody else's behalf: settle another CP's session, answer
another CP's authorisation, bill a driver from a charge point's menu, claim energy that
no charger could deliver, or keep a charge point from logging in. Each test asserts what
the attacker got (an ``error`` frame with its documented code, and nothing else) and what
the victim sees: its state and session in API_Central, its bill, its driver's own link,
its ability to log in.

"Nothing else" is checked without sleeping: a connection's messages are handled in order,
so after the attack the test sends a *probe* (telemetry for a session no CP has, refused
with ``no_session``) and reads everything up to the probe's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

import pytest

from central.drivers import add_driver
from common.client import AuthenticationFailed, AuthenticationThrottled, ClientLink, connect
from common.config import HostPort
from common.protocol import ClientHandshake, Connection
from common.protocol.handshake import Role
from common.protocol.messages import ErrorCode, Message, MessageType
from common.tcp import read_message
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    driver,
    provision_cp,
)
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration

TIMEOUT = 5.0  # for any one answer of Central's
ABSURD_KWH = 123456.7  # below MAX_KWH, so it parses; far above what 3,000 kW deliver in seconds


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


# ------------------------------------------------------------------ helpers
def engine_of(cp: ScriptedCP) -> ClientLink:
    assert cp.engine is not None
    return cp.engine


async def api(central: CentralProcess, path: str) -> Any:
    response = await asyncio.to_thread(central.get, path)
    response.raise_for_status()
    return response.json()


async def sessions(central: CentralProcess, query: str = "") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await api(central, f"/sessions?{query}"))["sessions"]
    return rows


async def collect_until(
    link: ClientLink, done: Callable[[Message], bool], timeout: float = TIMEOUT
) -> list[Message]:
    """Every message ``link`` receives, up to and including the first ``done`` one."""
    deadline = time.monotonic() + timeout
    got: list[Message] = []
    while True:
        got.append(await link.recv(max(0.0, deadline - time.monotonic())))
        if done(got[-1]):
            return got


_probes = iter(range(1, 1_000_000))


async def engine_inbox(engine: ClientLink) -> list[Message]:
    """What ``engine`` received so far (and up to now), without the probe's own answer."""
    probe = f"probe-{next(_probes)}"
    engine.send(MessageType.TELEMETRY, {"session_id": probe, "kwh": 0, "kw": 0})
    got = await collect_until(
        engine,
        lambda m: m.type is MessageType.ERROR and m.body.get("session_id") == probe,
    )
    assert got[-1].body["code"] == ErrorCode.NO_SESSION
    return got[:-1]


async def driver_inbox(drv: ClientLink) -> tuple[list[Message], Mapping[str, Any]]:
    """What ``drv`` received so far, and its own STATUS (live session, missed tickets)."""
    drv.send(MessageType.STATUS, {})
    got = await collect_until(drv, lambda m: m.type is MessageType.STATUS)
    return got[:-1], got[-1].body


async def refused(link: ClientLink, msg_type: MessageType, body: Mapping[str, Any]) -> Message:
    """Send one message that Central must refuse; return its error frame.

    The error must be the very next message (engines get nothing unasked, drivers
    nothing while these tests attack).
    """
    link.send(msg_type, body)
    error = await link.recv(TIMEOUT)
    assert error.type is MessageType.ERROR, f"{msg_type} {dict(body)} got {error}"
    return error


async def audit_error(central: CentralProcess, cp_id: str, code: ErrorCode) -> dict[str, Any]:
    """The ``error`` audit entry of ``cp_id`` with ``code`` (written just after the frame)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        entries = (await api(central, "/audit?action=error"))["entries"]
        found = [e for e in entries if e["cp_id"] == cp_id and e["params"]["code"] == code]
        if found:
            return dict(found[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"no {code} error of {cp_id} in the audit log: {entries}")
        await asyncio.sleep(0.1)


async def supplying(central: CentralProcess, cp: ScriptedCP, drv: ClientLink, kwh: float) -> str:
    """``drv`` charging at ``cp`` with ``kwh`` metered (telemetry seen by the driver)."""
    drv.send(MessageType.CHARGE_REQUEST, {"cp_id": cp.cp_id})
    session_id = await cp.accept_authorization()
    await drv.recv_until({MessageType.CHARGE_AUTHORIZED}, TIMEOUT)
    cp.plug(session_id)
    await drv.recv_until({MessageType.SUPPLY_STARTED}, TIMEOUT)
    await central.wait_state(cp.cp_id, "SUPPLYING")
    cp.telemetry(session_id, kwh)
    progress = await drv.recv_until({MessageType.TELEMETRY}, TIMEOUT)
    assert progress.body["kwh"] == kwh
    return session_id


async def assert_untouched(
    central: CentralProcess, cp_id: str, session_id: str, driver_id: str, kwh: float
) -> None:
    """The CP supplies its session, with its own energy, as API_Central shows it."""
    view = await api(central, f"/chargepoints/{cp_id}")
    assert view["state"] == "SUPPLYING"
    assert view["session"]["session_id"] == session_id
    assert view["session"]["status"] == "supplying"
    assert view["session"]["kwh"] == kwh
    rows = await sessions(central, f"cp_id={cp_id}")
    assert [(r["session_id"], r["driver_id"], r["status"], r["kwh"]) for r in rows] == [
        (session_id, driver_id, "supplying", kwh)
    ]


@contextlib.asynccontextmanager
async def online(
    central: CentralProcess, *cp_ids: str, driver_id: str = "D1"
) -> AsyncIterator[tuple[list[ScriptedCP], ClientLink]]:
    """Registered CPs (0.40 €/kWh), monitor and engine connected and ACTIVATED, and a
    connected driver ``driver_id``; all closed afterwards."""
    cps = [ScriptedCP(cp_id, provision_cp(central.db_url, cp_id), central.addr) for cp_id in cp_ids]
    d_secret = add_driver(central.db_url, driver_id, CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    for cp in cps:
        await cp.connect()
    drv = await driver(central.addr, driver_id, d_secret)
    try:
        for cp_id in cp_ids:
            await central.wait_state(cp_id, "ACTIVATED")
        yield cps, drv
    finally:
        await drv.close()
        for cp in cps:
            await cp.close()


# -------------------------------------------------------------------- tests
def test_another_cp_cannot_settle_a_live_session(shared_central: CentralProcess) -> None:
    central = shared_central

    async def scenario() -> None:
        async with online(central, "SETTLE1", "SETTLE2", driver_id="SETTLE-D") as ((cp1, cp2), drv):
            sid = await supplying(central, cp1, drv, 1.0)

            attacker = engine_of(cp2)
            # The absurd claim of the brief, and a plausible one that no energy bound stops.
            for kwh in (ABSURD_KWH, 1.5):
                end = {"session_id": sid, "kwh": kwh, "reason": "unplugged"}
                error = await refused(attacker, MessageType.SUPPLY_ENDED, end)
                assert error.body["code"] == ErrorCode.UNKNOWN_SESSION, kwh
                assert error.body["session_id"] == sid
            assert await engine_inbox(attacker) == []  # no TICKET, nothing at all
            await assert_untouched(central, "SETTLE1", sid, "SETTLE-D", 1.0)
            seen, status = await driver_inbox(drv)
            assert seen == [] and status["missed_tickets"] == []
            assert status["session"]["session_id"] == sid and status["session"]["kwh"] == 1.0
            entry = await audit_error(central, "SETTLE2", ErrorCode.UNKNOWN_SESSION)
            assert entry["params"]["message"] == MessageType.SUPPLY_ENDED
            assert entry["params"]["session_id"] == sid

            # The CP's own engine cannot bill absurd or shrinking energy either.
            own = engine_of(cp1)
            for msg_type in (MessageType.TELEMETRY, MessageType.SUPPLY_ENDED):
                for kwh in (ABSURD_KWH, 0.5):
                    error = await refused(own, msg_type, {"session_id": sid, "kwh": kwh})
                    assert error.body["code"] == ErrorCode.BAD_ENERGY, (msg_type, kwh)
                    assert error.body["session_id"] == sid
            assert await engine_inbox(own) == []
            await assert_untouched(central, "SETTLE1", sid, "SETTLE-D", 1.0)
            seen, status = await driver_inbox(drv)
            assert seen == [] and status["session"]["kwh"] == 1.0

            ticket = await cp1.unplug(sid, 2.0)
            mine = await drv.recv_until({MessageType.TICKET}, TIMEOUT)
            assert mine.body == ticket.body
            assert ticket.body["session_id"] == sid and ticket.body["driver_id"] == "SETTLE-D"
            assert ticket.body["kwh"] == 2.0 and ticket.body["total_eur"] == 0.8
            rows = await sessions(central, "cp_id=SETTLE1")
            assert [(r["status"], r["kwh"], r["total_eur"]) for r in rows] == [("ended", 2.0, 0.8)]
            await central.wait_state("SETTLE1", "ACTIVATED")

    run(scenario())


def test_another_cp_cannot_answer_a_pending_authorisation(shared_central: CentralProcess) -> None:
    central = shared_central

    async def scenario() -> None:
        async with online(central, "PENDING1", "PENDING2", driver_id="PENDING-D") as (
            (cp1, cp2),
            drv,
        ):
            drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "PENDING1"})
            asked = await engine_of(cp1).recv_until({MessageType.AUTHORIZE_SUPPLY}, TIMEOUT)
            sid = str(asked.body["session_id"])  # leaked to the attacker

            attacker = engine_of(cp2)
            for answer in (MessageType.CHARGE_DENIED, MessageType.CHARGE_AUTHORIZED):
                error = await refused(attacker, answer, {"session_id": sid, "reason": "x"})
                assert error.body["code"] == ErrorCode.UNKNOWN_SESSION, answer
                assert error.body["session_id"] == sid
            assert await engine_inbox(attacker) == []
            seen, status = await driver_inbox(drv)
            assert seen == []  # neither denied nor authorised by the attacker
            assert status["session"]["session_id"] == sid
            assert status["session"]["status"] == "authorized"

            engine_of(cp1).send(MessageType.CHARGE_AUTHORIZED, {"session_id": sid})
            got = await collect_until(
                drv, lambda m: m.type in {MessageType.CHARGE_AUTHORIZED, MessageType.CHARGE_DENIED}
            )
            assert [m.type for m in got] == [MessageType.CHARGE_AUTHORIZED]
            assert got[0].body["session_id"] == sid
            assert await engine_inbox(engine_of(cp1)) == []  # its own answer was taken
            rows = await sessions(central, "cp_id=PENDING1")
            assert [(r["session_id"], r["driver_id"], r["status"]) for r in rows] == [
                (sid, "PENDING-D", "authorized")
            ]
            cp1.plug(sid)
            await drv.recv_until({MessageType.SUPPLY_STARTED}, TIMEOUT)
            await central.wait_state("PENDING1", "SUPPLYING")
            await audit_error(central, "PENDING2", ErrorCode.UNKNOWN_SESSION)

    run(scenario())


def test_an_engine_cannot_bill_a_driver(central: CentralProcess) -> None:
    async def scenario() -> None:
        async with online(central, "CP1") as ((cp,), drv):
            attacker = engine_of(cp)
            attacker.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1", "driver_id": "D1"})
            got = await collect_until(attacker, lambda m: m.type is MessageType.ERROR)
            assert [m.type for m in got] == [MessageType.ERROR]  # no AUTHORIZE_SUPPLY first
            assert got[0].body["code"] == ErrorCode.FORBIDDEN
            assert await engine_inbox(attacker) == []
            entry = await audit_error(central, "CP1", ErrorCode.FORBIDDEN)
            assert entry["params"]["message"] == MessageType.CHARGE_REQUEST
            assert await sessions(central, "driver_id=D1") == []
            assert await sessions(central) == []
            seen, status = await driver_inbox(drv)
            assert seen == [] and status["session"] is None

            # The same engine's plain request is a local charge, billed to nobody.
            attacker.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
            asked = await attacker.recv_until({MessageType.AUTHORIZE_SUPPLY}, TIMEOUT)
            assert asked.body["driver_id"] is None
            sid = str(asked.body["session_id"])
            attacker.send(MessageType.CHARGE_AUTHORIZED, {"session_id": sid})
            assert await engine_inbox(attacker) == []
            rows = await sessions(central)
            assert [(r["session_id"], r["cp_id"], r["driver_id"], r["status"]) for r in rows] == [
                (sid, "CP1", None, "authorized")
            ]
            view = await api(central, "/chargepoints/CP1")
            assert view["session"]["session_id"] == sid and view["session"]["driver_id"] is None
            seen, status = await driver_inbox(drv)
            assert seen == [] and status["session"] is None

    run(scenario())


def test_unreadable_energy_is_refused_and_the_supply_goes_on(
    shared_central: CentralProcess,
) -> None:
    central = shared_central
    # Strings are not numbers; 1e308 is finite but above MAX_KWH; 10**400 is a JSON
    # integer too large for a float. The parser refuses all of them: bad_message.
    unreadable: list[object] = ["NaN", "1e999999", 1e308, 10**400]

    async def scenario() -> None:
        async with online(central, "UNREAD1", driver_id="UNREAD-D") as ((cp,), drv):
            sid = await supplying(central, cp, drv, 1.0)
            own = engine_of(cp)
            for msg_type in (MessageType.TELEMETRY, MessageType.SUPPLY_ENDED):
                for kwh in unreadable:
                    body = {"session_id": sid, "kwh": kwh, "kw": 11.0}
                    error = await refused(own, msg_type, body)
                    assert error.body["code"] == ErrorCode.BAD_MESSAGE, (msg_type, kwh)
            assert await engine_inbox(own) == []
            assert not own.closed
            await assert_untouched(central, "UNREAD1", sid, "UNREAD-D", 1.0)
            seen, status = await driver_inbox(drv)
            assert seen == [] and status["session"]["kwh"] == 1.0
            await audit_error(central, "UNREAD1", ErrorCode.BAD_MESSAGE)

            cp.telemetry(sid, 1.5)  # the connection survived: good telemetry is accepted
            progress = await drv.recv_until({MessageType.TELEMETRY}, TIMEOUT)
            assert progress.body["session_id"] == sid and progress.body["kwh"] == 1.5
            await assert_untouched(central, "UNREAD1", sid, "UNREAD-D", 1.5)
            ticket = await cp.unplug(sid, 2.0)
            mine = await drv.recv_until({MessageType.TICKET}, TIMEOUT)
            assert mine.body == ticket.body
            assert ticket.body["kwh"] == 2.0 and ticket.body["total_eur"] == 0.8
            await central.wait_state("UNREAD1", "ACTIVATED")

    run(scenario())


class _PendingHello:
    """A raw connection that sent a real HELLO, got its CHALLENGE, and never proves."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, addr: HostPort, role: Role, principal_id: str) -> _PendingHello:
        reader, writer = await asyncio.open_connection(addr.host, addr.port)
        conn = Connection(time.time)
        hello = ClientHandshake(role, principal_id, secret="never-proved", clock=time.time).start()
        writer.write(conn.send(hello.type, hello.body))
        challenge = await asyncio.wait_for(read_message(reader, conn, writer.write), TIMEOUT)
        assert challenge is not None and challenge.type is MessageType.CHALLENGE
        return cls(reader, writer)

    async def abandon(self) -> None:
        """Half-close, and wait until Central has given up on it (its EOF reaches us)."""
        self.writer.write_eof()
        while await asyncio.wait_for(self.reader.read(4096), TIMEOUT):
            pass
        self.writer.close()
        await self.writer.wait_closed()


async def _logs_in_at_once(central: CentralProcess, cp_id: str, secret: str) -> ScriptedCP:
    started = time.monotonic()
    cp = await ScriptedCP(cp_id, secret, central.addr).connect()  # throttled: raises
    assert time.monotonic() - started < 3, "the login was held up"
    await central.wait_state(cp_id, "ACTIVATED")
    return cp


def test_silent_hellos_in_a_cps_name_do_not_keep_it_out(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1")

    async def scenario() -> None:
        pending: list[_PendingHello] = []
        try:
            # Five as the brief's driver "CP1", five in the monitor's own name: the
            # monitor's are the ones that would lock it out if silence counted.
            for role in (Role.DRIVER, Role.MONITOR):
                for _ in range(5):
                    pending.append(await _PendingHello.open(central.addr, role, "CP1"))
            cp = await _logs_in_at_once(central, "CP1", secret)  # while they are pending
            await cp.close()
            await central.wait_state("CP1", "DISCONNECTED")
            for hello in pending:
                await hello.abandon()
            pending.clear()
            cp = await _logs_in_at_once(central, "CP1", secret)  # and after they ended
            await cp.close()
            entries = (await api(central, "/audit?action=cp.auth_failed"))["entries"]
            assert entries == []  # an abandoned handshake is no failed login
        finally:
            for hello in pending:
                hello.writer.close()
                await hello.writer.wait_closed()

    run(scenario())


def test_wrong_driver_secrets_for_an_id_do_not_delay_its_monitor(
    central: CentralProcess,
) -> None:
    secret = provision_cp(central.db_url, "CP1")
    d_secret = add_driver(
        central.db_url, "CP1", CHEAP_SCRYPT, TEST_AUDIT_KEYS
    )  # a driver named like the CP

    async def scenario() -> None:
        for _ in range(3):  # the id's whole free allowance: the next login of it waits
            with pytest.raises(AuthenticationFailed) as wrong:
                await connect(central.addr, Role.DRIVER, "CP1", secret="guess")
            assert not isinstance(wrong.value, AuthenticationThrottled)
        started = time.monotonic()
        cp = await ScriptedCP("CP1", secret, central.addr).connect()  # throttled: raises
        try:
            assert time.monotonic() - started < 3, "the login was held up"
            # The guesses did count, against the driver "CP1" alone. Its delay is the first
            # one, 1 s from the last guess: checked only while it lasts, so that a slow
            # machine cannot make this fail.
            if time.monotonic() - started < 0.7:
                with pytest.raises(AuthenticationThrottled):
                    await connect(central.addr, Role.DRIVER, "CP1", secret=d_secret)
            await central.wait_state("CP1", "ACTIVATED")
        finally:
            await cp.close()

    run(scenario())
