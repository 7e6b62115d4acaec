"""The Helm chart against the service it deploys: every variable it sets is a setting, every
value it reads is declared and checked by its schema (no helm binary in CI: the templates
are read as text)."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import orjson
import yaml

from service.settings import Settings

CHART = Path(__file__).resolve().parents[2] / "helm" / "engagement-scoring"
TEMPLATES = sorted((CHART / "templates").glob("*.yaml"))
_SET_BY_THE_CHART = re.compile(r"\b(?:name: )?(ENGAGEMENT_[A-Z_]+)\b")
_CONFIG_VALUE = re.compile(r"\.Values\.config\.([A-Za-z]+)")


def _chart_text() -> str:
    return "\n".join(path.read_text() for path in TEMPLATES)


def test_every_variable_the_chart_sets_is_a_setting() -> None:
    names = set(_SET_BY_THE_CHART.findall(_chart_text()))
    assert {"ENGAGEMENT_MEMORY_BUDGET_BYTES", "ENGAGEMENT_MEMORY_LIMIT_BYTES",
            "ENGAGEMENT_HOT_ACCOUNTS"} <= names
    fields = {f"ENGAGEMENT_{name.upper()}" for name in Settings.model_fields}
    assert names - fields == set()


def test_every_config_value_is_declared_and_the_defaults_pass_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = orjson.loads((CHART / "values.schema.json").read_bytes())
    jsonschema.validate(values, schema)
    used = set(_CONFIG_VALUE.findall(_chart_text()))
    assert used - set(values["config"]) == set()
    assert used - set(schema["properties"]["config"]["properties"]) == set()


def test_the_hot_set_is_a_budget_by_default_and_a_count_only_when_set() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = orjson.loads((CHART / "values.schema.json").read_bytes())
    assert values["config"]["hotAccounts"] is None
    assert values["config"]["memoryBudgetBytes"] == 0
    assert values["resources"]["limits"]["memory"]  # what the default budget is a share of
    for bad in ({"hotAccounts": 0}, {"memoryBudgetBytes": -1}):
        config = {**values["config"], **bad}
        try:
            jsonschema.validate({**values, "config": config}, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"the schema accepted {bad}")
    configmap = (CHART / "templates" / "configmap.yaml").read_text()
    # An empty ENGAGEMENT_HOT_ACCOUNTS would not parse: it is only rendered when set.
    assert re.search(r"with \.Values\.config\.hotAccounts \}\}\s+ENGAGEMENT_HOT_ACCOUNTS",
                     configmap)
