"""The driver's commands over an in-memory Central: steps, exit codes, pauses, recovery."""

from __future__ import annotations

from datetime import datetime

from common.client import ConnectionClosed
from driver.app import Timing
from driver.errors import CentralDown, NotAuthenticated
from driver.servicefile import parse_service_file
from tests.unit.driver.fakes import (
    Harness,
    ScriptedCentral,
    Silence,
    T,
    charged,
    msg,
    ticket,
)

RUNNING = {
    "session_id": "s1",
    "cp_id": "CP1",
    "driver_id": "D1",
    "status": "supplying",
    "kw": 11.0,
    "kwh": 1.5,
    "eur": 0.6,
    "price_eur_kwh": 0.4,
}


def test_request_shows_each_step_then_the_ticket() -> None:
    h = Harness(ScriptedCentral({"CP1": [charged("CP1", "s1")]}))
    assert h.run(lambda app: app.request("CP1", 7.5)) == 0
    assert h.link.sent[:2] == [
        (T.STATUS, {}),
        (T.CHARGE_REQUEST, {"cp_id": "CP1", "target_kwh": 7.5}),
    ]
    assert h.output == [
        "CP1: requesting a charge (target 7.5 kWh)",
        "CP1: authorised at 0.40 €/kWh (session s1); waiting for the vehicle",
        "CP1: vehicle plugged in, charging",
        "charging CP1: 11.0 kW 0.500 kWh 0.20 € 00:01",
        "charging CP1: 11.0 kW 1.000 kWh 0.40 € 00:02",
        "ticket CP1: 1.000 kWh x 0.40 €/kWh = 0.40 € (unplugged) "
        + h.output[-1].split("(unplugged) ")[1],
    ]
    assert h.output[-1].endswith("session s1")
    assert h.link.types_sent()[-1] is T.CHARGE_REQUEST  # no status polling on a live charge


def test_a_denied_request_exits_1_with_the_reason() -> None:
    h = Harness(ScriptedCentral())
    assert h.run(lambda app: app.request("CP9")) == 1
    assert h.output[-1] == "CP9: denied: unknown charge point"


def test_missed_tickets_are_shown_first_and_a_running_charge_blocks_a_request() -> None:
    h = Harness(
        ScriptedCentral(statuses=[{"session": RUNNING, "missed_tickets": [ticket("CP2", "s0")]}])
    )
    assert h.run(lambda app: app.request("CP3")) == 1
    assert h.output[0].startswith("missed while away: ticket CP2: 1.000 kWh x 0.40 €/kWh")
    assert (
        h.output[1] == "charge in progress: charging at CP1: 1.500 kWh 0.60 € so far (session s1)"
    )
    assert "follow it with: ev-driver ... status --follow" in h.output[2]
    assert T.CHARGE_REQUEST not in h.link.types_sent()


def test_run_pauses_between_services_and_ends_with_a_summary() -> None:
    services = parse_service_file("CP1\nGHOST 3\nCP2 oops\n\nCP2 5\n")
    central = ScriptedCentral({"CP1": [charged("CP1", "a")], "CP2": [charged("CP2", "b", 4)]})
    h = Harness(central)
    assert h.run(lambda app: app.run(services, 4.0, "svc.txt")) == 0
    assert h.errors == ["svc.txt: line 3: target 'oops' is not a number of kWh (skipped)"]
    out = h.out.getvalue()
    starts = [line for line in out.splitlines() if " (line " in line]
    ends = [line for line in out.splitlines() if " done: " in line]
    assert [s.split(" ", 1)[1] for s in starts] == [
        "service 1/3 (line 1): CP1",
        "service 2/3 (line 2): GHOST, target 3 kWh",
        "service 3/3 (line 5): CP2, target 5 kWh",
    ]
    assert [e.split(" ", 1)[1] for e in ends] == [
        "service 1/3 done: ticket (unplugged) 1.000 kWh 0.40 €",
        "service 2/3 done: denied: unknown charge point",
        "service 3/3 done: ticket (unplugged) 2.000 kWh 0.80 €",
    ]
    gaps = [
        (
            datetime.fromisoformat(s.split()[0]) - datetime.fromisoformat(e.split()[0])
        ).total_seconds()
        for e, s in zip(ends, starts[1:], strict=False)
    ]
    assert gaps == [4.0, 4.0]
    assert "total │ 2/3 charged" in out and "3.000 │ 1.20" in out


def test_an_empty_file_runs_nothing() -> None:
    h = Harness(ScriptedCentral())
    assert h.run(lambda app: app.run(parse_service_file("# nothing\n"), 4.0, "f")) == 0
    assert h.output == ["no services in f"]
    assert h.link.sent == []


def test_a_lost_connection_mid_charge_is_recovered_from_status() -> None:
    run = [*charged("CP1", "s1")[:4], ConnectionClosed("gone")]
    central = ScriptedCentral(
        {"CP1": [run]}, statuses=[{}, {"missed_tickets": [ticket("CP1", "s1", 2.5)]}]
    )
    h = Harness(central)
    assert h.run(lambda app: app.request("CP1")) == 0
    assert h.link.opened == 2
    assert h.errors == ["lost the connection to Central; reconnecting"]
    assert h.output[-1].startswith("ticket CP1: 2.500 kWh x 0.40 €/kWh = 1.00 €")


def test_a_lost_connection_resumes_a_charge_that_goes_on() -> None:
    run = [*charged("CP1", "s1")[:4], ConnectionClosed("gone")]
    central = ScriptedCentral(
        {"CP1": [run]},
        statuses=[{}, {"session": RUNNING}],
        after_status={1: [Silence(1), msg(T.TICKET, **ticket("CP1", "s1", 3.0))]},
    )
    h = Harness(central)
    assert h.run(lambda app: app.request("CP1")) == 0
    assert any(line.startswith("Central still holds it: charging at CP1") for line in h.output)
    assert h.output[-1].startswith("ticket CP1: 3.000 kWh")


def test_silence_is_checked_with_status_and_the_plug_wait_is_capped() -> None:
    waiting = {**RUNNING, "status": "authorized"}
    central = ScriptedCentral(
        {"CP1": [[msg(T.CHARGE_AUTHORIZED, session_id="s1", cp_id="CP1"), Silence(10_000)]]},
        statuses=[{}] + [{"session": waiting}] * 10,
    )
    h = Harness(central, Timing(plug_wait=60, check_every=15))
    assert h.run(lambda app: app.request("CP1")) == 5
    assert h.link.types_sent().count(T.STATUS) == 1 + 3  # preflight, then at 15, 30, 45 s
    assert h.output[-1] == "CP1: gave up: vehicle not plugged in within 60 s (--plug-wait)"


def test_no_answer_to_a_request_gives_up() -> None:
    central = ScriptedCentral({"CP1": [[Silence(10_000)]]})
    h = Harness(central, Timing(answer=30))
    assert h.run(lambda app: app.request("CP1")) == 5
    assert h.output[-1] == "CP1: gave up: no answer from Central within 30 s"


def test_status_follows_a_running_charge_to_its_ticket() -> None:
    central = ScriptedCentral(
        statuses=[{"session": RUNNING}],
        after_status={
            0: [
                Silence(1),
                msg(T.TELEMETRY, session_id="s1", cp_id="CP1", kw=11.0, kwh=2.0, eur=0.8),
                msg(T.TICKET, **ticket("CP1", "s1", 2.25)),
            ]
        },
    )
    h = Harness(central)
    assert h.run(lambda app: app.status(follow=True)) == 0
    assert (
        h.output[0] == "charge in progress: charging at CP1: 1.500 kWh 0.60 € so far (session s1)"
    )
    assert "charging CP1: 11.0 kW 1.500 kWh 0.60 € 00:00" in h.output
    assert "charging CP1: 11.0 kW 2.000 kWh 0.80 € 00:01" in h.output
    assert h.output[-1].startswith("ticket CP1: 2.250 kWh")


def test_status_without_follow_shows_missed_tickets_and_how_to_follow() -> None:
    h = Harness(ScriptedCentral(statuses=[{"missed_tickets": [ticket("CP1", "s0")]}]))
    assert h.run(lambda app: app.status()) == 0
    assert h.output[0].startswith("missed while away: ticket CP1")
    assert h.output[1] == "no charge in progress"
    h = Harness(ScriptedCentral(statuses=[{"session": RUNNING}]))
    assert h.run(lambda app: app.status()) == 0
    assert h.output[-1] == "follow it with: ev-driver ... status --follow"


def test_list_and_history() -> None:
    cps = [{"id": "CP1", "location": "Madrid", "price_eur_kwh": 0.35}]
    h = Harness(ScriptedCentral(cps=cps, tickets=[ticket("CP1", "s0")]))
    assert h.run(lambda app: app.list_cps()) == 0
    assert "Madrid" in h.out.getvalue() and "0.35 €/kWh" in h.out.getvalue()
    assert h.run(lambda app: app.history()) == 0
    assert "unplugged" in h.out.getvalue()
    h = Harness(ScriptedCentral())
    assert h.run(lambda app: app.list_cps()) == 0 and h.run(lambda app: app.history()) == 0
    assert h.output == ["no charge point is free right now", "no tickets yet"]


def test_central_down_and_wrong_secret_become_exit_codes() -> None:
    h = Harness(ScriptedCentral(), open_errors=[CentralDown("Cannot reach Central at x:1")])
    assert h.run(lambda app: app.list_cps()) == 3
    assert h.errors == ["Cannot reach Central at x:1"]
    h = Harness(ScriptedCentral(), open_errors=[NotAuthenticated("Central refused driver D1")])
    assert h.run(lambda app: app.list_cps()) == 4


def test_central_lost_for_good_mid_run_marks_the_rest_not_run() -> None:
    services = parse_service_file("CP1\nCP2\nCP3\n")
    run = [*charged("CP2", "b")[:2], ConnectionClosed("gone")]
    central = ScriptedCentral({"CP1": [charged("CP1", "a")], "CP2": [run]})
    down = CentralDown("Cannot reach Central at x:1; gave up after 30 s")
    h = Harness(central, open_errors=[None, down])
    assert h.run(lambda app: app.run(services, 1.0)) == 3
    out = h.out.getvalue()
    assert "Cannot reach Central at x:1; gave up after 30 s" in h.errors
    assert "ticket (unplugged)" in out and out.count("not run") == 2


def test_a_query_is_asked_again_after_a_reconnection_then_given_up() -> None:
    central = ScriptedCentral(cps=[{"id": "CP1", "location": "Oslo", "price_eur_kwh": 0.3}])
    closes = iter([ConnectionClosed("gone")])

    def flaky(msg_type: T, body: dict[str, object]) -> list[object]:
        return [next(closes, None) or m for m in central(msg_type, body)]

    h = Harness(flaky)  # type: ignore[arg-type]
    assert h.run(lambda app: app.list_cps()) == 0
    assert h.link.opened == 2 and h.errors == ["lost the connection to Central; reconnecting"]
    assert "Oslo" in h.out.getvalue()
    h = Harness(lambda *_: [ConnectionClosed("gone")])
    assert h.run(lambda app: app.history()) == 3
    assert h.errors[-1] == "Central closed the connection: gone"
