"""The two test tiers, chosen by QUILTC_TEST_PROFILE: what each runs of a test's cases.

`ci` (the default; `make test`) runs every property test at the hypothesis budget it
states and every parametrized case. `dev` (`make test-fast`, which also leaves out the
tests marked slow) runs a tenth of each budget, at least DEV_MINIMUM examples: enough to
catch a broken property while editing, not enough to find its rare corners.

A property test states its ci budget as `@settings(max_examples=examples(40))`; one that
states none runs DEFAULT_EXAMPLES at ci (tests/conftest.py registers both profiles).
"""

import os

import pytest

PROFILES = ("ci", "dev")
DEFAULT_EXAMPLES = 20
DEV_SHARE = 10
DEV_MINIMUM = 2


def profile_name():
    """The tier QUILTC_TEST_PROFILE names: "ci" (when unset) or "dev"."""
    name = os.environ.get("QUILTC_TEST_PROFILE", "ci")
    if name not in PROFILES:
        raise pytest.UsageError(f"QUILTC_TEST_PROFILE={name!r} is not a test profile; use "
                                "'ci' (every example, as make test) or 'dev' (a tenth, as "
                                "make test-fast)")
    return name


def dev_examples(ci_budget):
    """The dev tier's share of a ci budget."""
    return max(DEV_MINIMUM, ci_budget // DEV_SHARE)


def examples(ci_budget):
    """max_examples for a property test that runs `ci_budget` examples at ci."""
    return ci_budget if profile_name() == "ci" else dev_examples(ci_budget)


def activation_widths():
    """Activation widths 1 to 8 for `pytest.mark.parametrize`, the middle ones marked
    slow: the fast tier checks the narrowest and the widest, `make test` every width."""
    return [bits if bits in (1, 8) else pytest.param(bits, marks=pytest.mark.slow)
            for bits in range(1, 9)]
