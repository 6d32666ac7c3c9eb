"""``prefetch``: an iterator run ahead of its consumer in a thread, in order, errors handed over."""
import threading
import time

import pytest

from csa_keras.utils.prefetch import prefetch


@pytest.mark.parametrize("depth", [0, 1, 3, 100])
def test_items_come_in_order_and_all_of_them(depth):
    assert list(prefetch(iter(range(50)), depth)) == list(range(50))


def test_the_producer_runs_ahead_in_another_thread_by_at_most_depth():
    made, threads = [], set()

    def items():
        for i in range(20):
            threads.add(threading.get_ident())
            made.append(i)
            yield i

    stream = prefetch(items(), 3)
    assert next(stream) == 0
    time.sleep(0.3)
    assert threading.get_ident() not in threads
    assert 1 + 3 <= len(made) <= 1 + 3 + 1, made
    assert list(stream) == list(range(1, 20))


def test_an_error_of_the_producer_is_raised_where_its_item_would_have_come():
    def items():
        yield 1
        yield 2
        raise KeyError("bad item")

    stream = prefetch(items(), 4)
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(KeyError, match="bad item"):
        next(stream)


def test_a_consumer_that_stops_early_stops_the_producer():
    made = []

    def items():
        for i in range(10_000):
            made.append(i)
            yield i

    stream = prefetch(items(), 2)
    assert next(stream) == 0
    stream.close()
    count = len(made)
    time.sleep(0.3)
    assert len(made) == count <= 4
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
