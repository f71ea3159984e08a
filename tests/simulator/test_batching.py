import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.batching import send_in_batches


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0, 1), interval=st.sampled_from([5, 15, 30, 60]),
       minutes=st.integers(1, 600))
def test_batches_keep_every_document(seed, share, interval, minutes):
    rng = np.random.default_rng(seed)
    deposits = rng.poisson(20, minutes)
    sent, waiting, flushes = send_in_batches(deposits, share, interval, rng)
    assert sent.min() >= 0 and sent.sum() + waiting == deposits.sum()
    # nothing is sent before it was produced
    assert np.all(np.cumsum(sent) <= np.cumsum(deposits))
    # the flushes are part of what is sent, only on the boundaries, and the rest is sent as produced
    assert flushes.shape == deposits.shape and flushes.min() >= 0 and np.all(flushes <= sent)
    assert not flushes[np.arange(minutes) % interval != 0].any() and flushes[0] == 0
    assert np.all(sent - flushes <= deposits)
    if share == 0:
        assert not flushes.any() and waiting == 0 and np.array_equal(sent, deposits)


def test_batches_leave_on_the_boundaries():
    deposits = np.full(120, 10)
    sent, waiting, flushes = send_in_batches(deposits, 1.0, 15, np.random.default_rng(0))
    assert set(np.flatnonzero(sent)) == {15, 30, 45, 60, 75, 90, 105}
    assert sent[15] == 150 and waiting == 150
    np.testing.assert_array_equal(flushes, sent)  # everything held: every document sent is a flush


def test_flushes_are_the_held_part_only():
    deposits = np.full(60, 1000)
    sent, waiting, flushes = send_in_batches(deposits, 0.25, 15, np.random.default_rng(1))
    held = flushes.sum() + waiting
    assert abs(held - 0.25 * deposits.sum()) < 5 * np.sqrt(deposits.sum() * 0.25 * 0.75)
    assert set(np.flatnonzero(flushes)) == {15, 30, 45}
    assert np.all(sent[flushes == 0] < 1000)  # minutes without a flush send only what was not held
