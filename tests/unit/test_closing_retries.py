"""When a retired strategy's position is tried again (`strategy.closing.Closing.due`): the wait
after each failed closing sell doubles from the sweep's interval, and never passes a day; and
when it is closed for good (`settled`)."""

from __future__ import annotations

from mastertrade.strategy.closing import RETRY_CAP_SECONDS, Closing

BASE = 300.0


def test_a_first_closing_waits_for_nothing_but_a_signal_on_its_way() -> None:
    assert Closing("st1-X-5-buy").due(BASE)
    assert not Closing("st1-X-5-buy", in_flight=True).due(BASE)
    assert Closing("st1-X-5-buy", stranded=True).due(BASE)  # lost on its way: not waited for
    assert not Closing(None).due(BASE)  # never traded


def test_each_failure_doubles_the_wait() -> None:
    for attempts, wait in ((1, 300), (2, 600), (3, 1200), (8, 38_400)):
        assert not Closing("s", attempts=attempts, waited=wait - 1).due(BASE)
        assert Closing("s", attempts=attempts, waited=wait).due(BASE)


def test_the_wait_stops_growing_at_a_day() -> None:
    for attempts in (10, 100, 5000):  # 5000 doublings would overflow a float
        assert not Closing("s", attempts=attempts, waited=RETRY_CAP_SECONDS - 1).due(BASE)
        assert Closing("s", attempts=attempts, waited=RETRY_CAP_SECONDS).due(BASE)


def test_only_nothing_open_and_nothing_on_its_way_is_settled() -> None:
    assert Closing("s").settled()
    pending = (Closing("s", in_flight=True), Closing("s", stranded=True),
               Closing("s", open_orders=True))  # fmt: skip
    assert not any(closing.settled() for closing in pending)
