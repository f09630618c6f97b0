"""The charge tracker: Central's messages in, steps and an outcome out (no sockets)."""

from __future__ import annotations

from typing import Any

from common.protocol.messages import Message, MessageType
from driver.charge import ChargeTracker, OutcomeKind, Phase, Step, StepKind

T = MessageType


def msg(msg_type: MessageType, **body: Any) -> Message:
    return Message(msg_type, 1, 0.0, body)


def ticket(session_id: str = "s1", cp_id: str = "CP1", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "cp_id": cp_id,
        "kwh": 2.5,
        "price_eur_kwh": 0.4,
        "total_eur": 1.0,
        "reason": "unplugged",
        **extra,
    }


def kinds(tracker: ChargeTracker, *messages: Message, now: float = 0.0) -> list[StepKind | None]:
    steps = [tracker.feed(m, now) for m in messages]
    return [s.kind if s else None for s in steps]


def test_a_charge_from_request_to_ticket() -> None:
    t = ChargeTracker("CP1")
    step = t.feed(msg(T.CHARGE_AUTHORIZED, session_id="s1", cp_id="CP1", price_eur_kwh=0.4), 0)
    assert step == Step(StepKind.AUTHORIZED, "CP1", step.body if step else {})
    assert (t.phase, t.session_id, t.price) == (Phase.AUTHORIZED, "s1", 0.4)
    assert kinds(t, msg(T.SUPPLY_STARTED, session_id="s1", cp_id="CP1"), now=10.0) == [
        StepKind.PLUGGED
    ]
    t.feed(msg(T.TELEMETRY, session_id="s1", cp_id="CP1", kw=11, kwh=1.25, eur=0.5), 13.0)
    p = t.progress(22.5)
    assert (p.kw, p.kwh, p.eur, p.elapsed) == (11.0, 1.25, 0.5, 12.5)
    assert not t.done
    assert kinds(t, msg(T.TICKET, **ticket())) == [StepKind.TICKET]
    assert t.done and t.phase is Phase.FINISHED
    outcome = t.outcome()
    assert (outcome.kind, outcome.kwh, outcome.eur, outcome.reason) == (
        OutcomeKind.CHARGED,
        2.5,
        1.0,
        "unplugged",
    )
    assert outcome.ok and outcome.describe() == "ticket (unplugged)"


def test_denied_at_once_or_after_the_authorisation() -> None:
    t = ChargeTracker("CP1")
    assert kinds(t, msg(T.CHARGE_DENIED, cp_id="CP1", reason="charge point is busy")) == [
        StepKind.DENIED
    ]
    assert t.outcome().describe() == "denied: charge point is busy" and t.done
    t = ChargeTracker("CP1")
    assert kinds(
        t,
        msg(T.CHARGE_AUTHORIZED, session_id="s1", cp_id="CP1"),
        msg(T.CHARGE_DENIED, cp_id="CP1", reason="vehicle not plugged in time"),
    ) == [StepKind.AUTHORIZED, StepKind.DENIED]
    assert t.outcome().kind is OutcomeKind.DENIED and not t.outcome().ok


def test_plugged_before_the_authorisation_was_read() -> None:
    # Central relays supply_started from the engine's task; charge_authorized may follow it.
    t = ChargeTracker("CP1")
    assert kinds(
        t,
        msg(T.SUPPLY_STARTED, session_id="s1", cp_id="CP1"),
        msg(T.CHARGE_AUTHORIZED, session_id="s1", cp_id="CP1", price_eur_kwh=0.4),
        msg(T.TELEMETRY, session_id="s1", cp_id="CP1", kw=7, kwh=1, eur=0.4),
    ) == [StepKind.STARTED, None, StepKind.PROGRESS]
    assert t.phase is Phase.SUPPLYING and t.price == 0.4


def test_messages_about_something_else_are_ignored_but_tickets_are_shown() -> None:
    t = ChargeTracker("CP1")
    t.feed(msg(T.CHARGE_AUTHORIZED, session_id="s1", cp_id="CP1"), 0)
    assert kinds(
        t,
        msg(T.TELEMETRY, session_id="s1", cp_id="CP2", kwh=9),  # another CP
        msg(T.TELEMETRY, session_id="old", cp_id="CP1", kwh=9),  # another session
        msg(T.CP_LIST, cps=[]),
        msg(T.CHARGE_AUTHORIZED, session_id="s1", cp_id="CP1"),  # not a step from here
        msg(T.TICKET, **ticket("old")),  # a ticket Central sent us: never dropped
    ) == [None, None, None, None, StepKind.OTHER_TICKET]
    assert t.phase is Phase.AUTHORIZED and t.kwh == 0


def test_reconcile_finds_the_ticket_among_the_missed_ones() -> None:
    t = ChargeTracker("CP1")
    t.feed(msg(T.SUPPLY_STARTED, session_id="s1", cp_id="CP1"), 0)
    steps = t.reconcile({"session": None, "missed_tickets": [ticket("s0"), ticket("s1")]}, 5)
    assert [s.kind for s in steps] == [StepKind.OTHER_TICKET, StepKind.TICKET]
    assert t.outcome().kind is OutcomeKind.CHARGED and t.outcome().session_id == "s1"


def test_reconcile_resumes_a_charge_central_still_holds() -> None:
    t = ChargeTracker("CP1")
    session = {"session_id": "s1", "cp_id": "CP1", "status": "supplying", "kw": 11, "kwh": 3.0}
    steps = t.reconcile({"session": session, "missed_tickets": []}, 7.0)
    assert [s.kind for s in steps] == [StepKind.RESUMED]
    assert (t.phase, t.session_id, t.kwh, t.supply_since) == (Phase.SUPPLYING, "s1", 3.0, 7.0)
    # An older status saying "authorized" never moves a supplying charge back.
    t.reconcile({"session": {**session, "status": "authorized"}, "missed_tickets": []}, 8.0)
    assert t.phase is Phase.SUPPLYING


def test_reconcile_when_central_knows_nothing_of_the_charge() -> None:
    never = ChargeTracker("CP1")
    (step,) = never.reconcile({"session": None, "missed_tickets": []}, 0)
    assert step.kind is StepKind.LOST and never.done
    assert never.outcome().describe() == "lost: Central has no record of this request"
    lapsed = ChargeTracker("CP1", "s1", Phase.AUTHORIZED)
    lapsed.reconcile({"session": None, "missed_tickets": []}, 0)
    assert "authorisation ended" in lapsed.outcome().reason
    ended = ChargeTracker("CP1", "s1", Phase.SUPPLYING)
    ended.reconcile({"session": {"session_id": "s2", "cp_id": "CP1"}, "missed_tickets": []}, 0)
    assert ended.outcome().kind is OutcomeKind.LOST
    assert "ticket did not reach this driver" in ended.outcome().reason


def test_adopt_a_running_charge_and_give_up() -> None:
    t = ChargeTracker.adopt(
        {"session_id": "s9", "cp_id": "CP3", "status": "authorized", "price_eur_kwh": 0.3}, 1.0
    )
    assert (t.cp_id, t.session_id, t.phase, t.price) == ("CP3", "s9", Phase.AUTHORIZED, 0.3)
    assert t.elapsed(50.0) == 0.0  # not supplying yet
    gave_up = t.give_up("vehicle not plugged in within 5 s")
    assert gave_up.describe() == "gave up: vehicle not plugged in within 5 s"
    assert gave_up.kind is OutcomeKind.GAVE_UP


def test_status_message_fed_directly_reconciles() -> None:
    t = ChargeTracker("CP1", "s1", Phase.SUPPLYING)
    step = t.feed(msg(T.STATUS, session=None, missed_tickets=[ticket()]), 0)
    assert step is not None and step.kind is StepKind.TICKET and t.done
    assert t.feed(msg(T.TELEMETRY, session_id="s1", cp_id="CP1"), 0) is None  # over
