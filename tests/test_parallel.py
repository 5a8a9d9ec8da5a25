"""Images of a batch segmented side by side (segtool.pipeline.parallel): the same results in the
same order as one at a time, errors raised where the caller reads them, and no waiting for images
nobody will read."""

import threading
import time

import pytest

from segtool.pipeline.parallel import available_cores, default_workers, map_in_order


def test_results_come_in_the_items_order_whatever_finishes_first():
    def slow_first(i):
        time.sleep(0.05 if i == 0 else 0.0)
        return i * i

    assert list(map_in_order(slow_first, range(6), workers=3)) == [i * i for i in range(6)]


def test_the_items_run_at_once_on_several_threads():
    seen, started = set(), threading.Barrier(2, timeout=5)

    def meet(i):
        started.wait()  # both items must be running at once, or this times out
        seen.add(threading.get_ident())
        return i

    assert list(map_in_order(meet, [0, 1], workers=2)) == [0, 1]
    assert len(seen) == 2


def test_one_worker_runs_in_the_callers_thread():
    caller = threading.get_ident()
    assert set(map_in_order(lambda _: threading.get_ident(), range(3), workers=1)) == {caller}


def test_blas_runs_one_thread_per_worker_while_the_batch_runs():
    from threadpoolctl import threadpool_info

    def blas_threads(_):
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    inside = list(map_in_order(blas_threads, range(2), workers=2))
    assert all(counts and set(counts) == {1} for counts in inside)


def test_an_error_reaches_the_caller_at_its_item_and_the_rest_is_not_waited_for():
    ran = []

    def fail_on_one(i):
        ran.append(i)
        if i == 1:
            raise ValueError("image 1 is broken")
        time.sleep(0.02)
        return i

    results = map_in_order(fail_on_one, range(40), workers=2)
    assert next(results) == 0
    with pytest.raises(ValueError, match="image 1"):
        next(results)
    assert len(ran) < 40  # the pending images were cancelled, not run


def test_the_default_is_the_cores_available_capped():
    assert 1 <= default_workers() <= min(available_cores(), 8)
