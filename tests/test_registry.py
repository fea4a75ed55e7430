import pytest

from brainalign.errors import ConfigError
from brainalign.registry import ALL, Registry


def test_register_lookup_and_description():
    reg = Registry("widget")

    @reg.register("a", description="the a widget", info={"x": 1})
    def a():
        return 1

    assert reg.get("a") is a
    assert reg.entry("a").description == "the a widget"
    assert reg.info("a") == {"x": 1}
    assert reg.names() == ["a"]


def test_duplicate_name_raises():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)


def test_unknown_name_lists_valid_ones():
    reg = Registry("widget")
    reg.register("beta")(lambda: 1)
    reg.register("alpha")(lambda: 1)
    with pytest.raises(ConfigError, match=r"unknown widget 'gamma'; valid: alpha, beta"):
        reg.get("gamma")


@pytest.mark.parametrize("kind", ["datasets", "models", "attacks"])
def test_core_registries_are_populated_with_descriptions(kind):
    entries = list(ALL[kind].entries())
    assert entries, kind
    assert all(e.description for e in entries)
