"""Property-based: with shared weights every variant agrees, whatever the small configuration."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tdcheck
from tdcheck.core.config import ACTIVATIONS
from tdcheck.core.variants import VARIANT_NAMES

configs = st.fixed_dictionaries(
    {
        "features": st.integers(1, 6),
        "hidden": st.integers(1, 12),
        "units": st.integers(1, 5),
        "seq": st.integers(1, 6),
        "batch": st.integers(1, 3),
        "rnn": st.sampled_from(["lstm", "gru", "simple-rnn", "none"]),
        "initializer": st.sampled_from(
            ["glorot_uniform", "he_normal", "random_normal:0.5", "constant:-0.3", "orthogonal"]
        ),
        "bias_initializer": st.sampled_from(["zeros", "random_uniform:1", "constant:0.2"]),
        "activation": st.sampled_from(ACTIVATIONS),
        "variants": st.permutations(VARIANT_NAMES).flatmap(
            lambda p: st.integers(2, 4).map(lambda n: ",".join(p[:n]))
        ),
        "input": st.sampled_from(["ones", "random"]),
        "seed": st.integers(0, 1000),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_shared_weight_variants_always_pass(options):
    result = tdcheck.compare(**options)
    assert result.passed, (options, result.verdict())
    n = len(options["variants"].split(","))
    # variant pairs, each variant against the oracle, and the trunk against the oracle; the
    # pairs in float64 (same computation), each variant by the statistical rule (not softmax)
    statistical = n if options["activation"] != "softmax" else 0
    assert len(result.comparisons) == (n - 1) + n + (options["rnn"] != "none") + (n - 1) + (
        statistical
    )
    assert all(c.stats.margin <= 1 for c in result.comparisons)
    head_in = options["features"] if options["rnn"] == "none" else options["hidden"]
    heads = result.layers[-n:]
    assert [row["params"] for row in heads] == [head_in * options["units"] + options["units"]] * n
