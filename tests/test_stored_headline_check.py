"""The headline check committed in brainalign/tuned/ speaks for the shipped demo: every condition the demo checks
has a stored check whose config digest matches its seed-0 config. A change to what makes those models or their
headline (tuned settings, schedule, test images, headline attack) fails here until `brainalign demo --check` is
rerun and its headline_check.json committed."""

from pathlib import Path

from brainalign import demo
from brainalign.analysis.summary import STORED_CHECK
from brainalign.io import read_json


def test_the_stored_headline_check_matches_the_shipped_demo():
    stored = read_json(demo.TUNED_DIR / STORED_CHECK)
    assert stored["command"] == demo.CHECK_COMMAND and stored["seeds"] == list(demo.CHECKED_SEEDS)
    conditions, schedule = demo.load_conditions()
    checked = [c for c in conditions if c.tuned.get("role") in demo.HEADLINE_CHECK_ROLES]
    assert {c.name for c in checked} == set(stored["conditions"])
    for c in checked:
        config = demo.condition_config(c, demo.CHECKED_SEEDS[0], Path("runs"), False, schedule)
        entry = stored["conditions"][c.name]
        assert demo.config_digest(config) == entry["config_digest"], f"{c.name}: rerun `brainalign demo --check`"
