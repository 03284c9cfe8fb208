"""The package's public namespace and its keyword errors: `dir(tdcheck)` shows the API only,
and a misspelt keyword gets the same suggestion as the CLI's misspelt option."""

from __future__ import annotations

import pytest

import tdcheck


def test_dir_shows_the_public_api_only():
    assert dir(tdcheck) == [
        "CompareConfig", "ConfigError", "EnvironmentProblem", "TdcheckError", "__version__",
        "assert_equivalent", "compare", "compare_models", "export", "rewrite", "scan",
    ]  # fmt: skip
    for name in ("Any", "TYPE_CHECKING", "annotations"):
        assert name not in dir(tdcheck)
    assert all(hasattr(tdcheck, name) for name in tdcheck.__all__)
    namespace: dict[str, object] = {}
    exec("from tdcheck import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(tdcheck.__all__)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tdcheck.compare(hiden=5),
         "compare() got an unexpected keyword argument 'hiden' (did you mean 'hidden'?)"),
        (lambda: tdcheck.compare(tdcheck.CompareConfig(), variant="dense"),
         "compare() got an unexpected keyword argument 'variant' (did you mean 'variants'?)"),
        (lambda: tdcheck.rewrite("m.keras", chekcs=3),
         "rewrite() got an unexpected keyword argument 'chekcs' (did you mean 'checks'?)"),
        (lambda: tdcheck.compare_models("a.keras", "b.keras", sead=1),
         "compare_models() got an unexpected keyword argument 'sead' (did you mean 'seed'?)"),
        (lambda: tdcheck.assert_equivalent("a.keras", "b.keras", atoll=1e-6),
         "assert_equivalent() got an unexpected keyword argument 'atoll' (did you mean 'atol'?)"),
        (lambda: tdcheck.compare(zzz=1), "compare() got an unexpected keyword argument 'zzz'"),
    ],
)  # fmt: skip
def test_a_misspelt_keyword_names_the_right_one(call, message):
    with pytest.raises(TypeError) as info:
        call()
    assert str(info.value) == message


def test_right_keywords_still_pass_through():
    from tdcheck.errors import ConfigError

    with pytest.raises(ConfigError, match="hidden"):  # validated by the config, not a TypeError
        tdcheck.compare(hidden=0)
