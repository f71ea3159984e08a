"""A worker's garbage collector: start-up heap frozen, young collections rarer, older ones as CPython's."""

from __future__ import annotations

import gc

from record_service.worker import tune_garbage_collector


def test_the_start_up_heap_is_frozen_and_young_collections_are_rarer():
    thresholds = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_freeze_count() > 1000  # what existed (this test's modules included) is frozen
        assert gc.get_threshold() == (50_000, 10, 10)
        young_before = gc.get_stats()[0]["collections"]
        garbage = [[n] for n in range(20_000)]  # fewer new containers than the threshold: no collection
        assert gc.get_stats()[0]["collections"] == young_before
        del garbage
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
