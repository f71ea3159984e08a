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
    sent, waiting = send_in_batches(deposits, share, interval, rng)
    assert sent.min() >= 0 and sent.sum() + waiting == deposits.sum()
    # nothing is sent before it was produced
    assert np.all(np.cumsum(sent) <= np.cumsum(deposits))


def test_batches_leave_on_the_boundaries():
    deposits = np.full(120, 10)
    sent, waiting = send_in_batches(deposits, 1.0, 15, np.random.default_rng(0))
    assert set(np.flatnonzero(sent)) == {15, 30, 45, 60, 75, 90, 105}
    assert sent[15] == 150 and waiting == 150
