"""The provider as Airflow sees it: schemas, entry point, ProvidersManager, connection UI, the CLI.

Runs on every supported Airflow. Connection-form metadata is read from two places depending on the
version: Airflow 3.2+ reads the declarative ``conn-fields`` / ``ui-field-behaviour`` of the provider
info without importing the hook; older releases call the hook's ``get_connection_form_widgets()`` /
``get_ui_field_behaviour()``, which need ``wtforms``. Each version is checked for what it really uses.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from airflow_provider_gptproto import __version__
from airflow_provider_gptproto.get_provider_info import (
    DEFAULT_RETRY_LIMIT,
    DEFAULT_TIMEOUT_SECONDS,
    conn_fields,
    get_provider_info,
    ui_field_behaviour,
)
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook

AIRFLOW_VERSION = Version(Version(airflow.__version__).base_version)
DECLARATIVE_UI = Version("3.2") <= AIRFLOW_VERSION  # conn-fields / ui-field-behaviour read from provider info
PACKAGE = "airflow-provider-gptproto"
HOOK_CLASS = "airflow_provider_gptproto.hooks.gptproto.GPTProtoHook"
EXTRAS = {"timeout", "retry_limit", "max_bytes", "allow_private_urls"}
WIDGETS = {f"extra__gptproto__{name}" for name in EXTRAS}
BEHAVIOUR = {
    "hidden_fields": ["schema", "port", "login"],
    "relabeling": {"host": "Base URL", "password": "API Key"},
    "placeholders": {
        "host": "https://gptproto.com (default when empty)",
        "password": "sk-... (sent as 'Authorization: Bearer <key>')",
    },
}


def airflow_schema(name: str) -> dict[str, Any]:
    """A JSON schema shipped inside the installed Airflow."""
    resource = importlib.resources.files("airflow").joinpath(name)
    if not resource.is_file():  # pragma: no cover - fall back to the package directory
        resource = Path(airflow.__file__).parent / name
    return json.loads(resource.read_text())


def validate(instance: Any, schema: dict[str, Any]) -> None:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    cls(schema).validate(instance)


# ------------------------------------------------------------------------------- provider info


def test_provider_info_matches_the_runtime_schema() -> None:
    validate(get_provider_info(), airflow_schema("provider_info.schema.json"))


def test_runtime_schema_rejects_a_broken_provider_info() -> None:
    broken = get_provider_info()
    del broken["connection-types"][0]["hook-class-name"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, airflow_schema("provider_info.schema.json"))


def test_sections_match_the_strict_development_schema() -> None:
    """Every key the strict provider.yaml schema defines is validated against that definition."""
    strict = airflow_schema("provider.yaml.schema.json")
    info = get_provider_info()
    checked = []
    for key, value in info.items():
        if key in strict["properties"]:
            sub = {**strict["properties"][key], "definitions": strict.get("definitions", {})}
            validate(value, sub)
            checked.append(key)
    assert {"integrations", "hooks", "connection-types", "triggers"} <= set(checked)


def test_conn_fields_and_ui_field_behaviour_against_strict_definitions() -> None:
    item_props = airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"][
        "properties"
    ]
    item = get_provider_info()["connection-types"][0]
    if DECLARATIVE_UI:
        assert {"conn-fields", "ui-field-behaviour", "hook-name"} <= set(item_props)
    for key in ("conn-fields", "ui-field-behaviour", "hook-name"):
        if key in item_props:
            validate(item[key], item_props[key])
    if not DECLARATIVE_UI:
        # Older schemas do not know the keys, but must not forbid them either (runtime validation).
        assert "conn-fields" not in item_props
        runtime_item = airflow_schema("provider_info.schema.json")["properties"]["connection-types"]["items"]
        assert runtime_item.get("additionalProperties", True) is not False


def test_strict_schema_would_catch_a_bad_conn_field() -> None:
    item_props = airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"][
        "properties"
    ]
    if "conn-fields" not in item_props:
        assert not DECLARATIVE_UI
        return
    with pytest.raises(jsonschema.ValidationError):
        validate({"timeout": {"schema": {"type": "integer"}}}, item_props["conn-fields"])  # no label
    with pytest.raises(jsonschema.ValidationError):
        validate({"hidden-fields": ["colour"]}, item_props["ui-field-behaviour"])


def test_legacy_ui_field_behaviour_matches_airflow_schema_and_declarative_one() -> None:
    legacy = GPTProtoHook.get_ui_field_behaviour()
    validate(legacy, airflow_schema("customized_form_field_behaviours.schema.json"))
    assert legacy == BEHAVIOUR
    declarative = ui_field_behaviour()
    assert legacy == {
        "hidden_fields": declarative["hidden-fields"],
        "relabeling": declarative["relabeling"],
        "placeholders": declarative["placeholders"],
    }


def test_conn_field_defaults_are_the_hook_defaults() -> None:
    fields = conn_fields()
    assert set(fields) == {w.removeprefix("extra__gptproto__") for w in WIDGETS}
    assert fields["timeout"]["schema"]["default"] == DEFAULT_TIMEOUT_SECONDS
    assert fields["retry_limit"]["schema"]["default"] == DEFAULT_RETRY_LIMIT


def test_package_name_is_the_distribution_name_and_not_reserved() -> None:
    info = get_provider_info()
    dist = importlib.metadata.distribution(PACKAGE)
    assert info["package-name"] == canonicalize_name(dist.metadata["Name"])
    assert not info["package-name"].startswith("apache-airflow")
    assert dist.version == __version__


def test_entry_point_returns_the_provider_info() -> None:
    points = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and canonicalize_name(ep.dist.name) == PACKAGE
    ]
    assert len(points) == 1
    assert points[0].load()() == get_provider_info()


def _referenced_names(info: dict[str, Any]) -> tuple[list[str], list[str]]:
    modules = [
        m
        for key in ("hooks", "operators", "sensors", "triggers")
        for e in info.get(key, [])
        for m in e["python-modules"]
    ]
    classes = [*info.get("extra-links", []), *(c["hook-class-name"] for c in info["connection-types"])]
    return modules, classes


def test_every_referenced_module_and_class_is_importable() -> None:
    modules, classes = _referenced_names(get_provider_info())
    for module in modules:
        importlib.import_module(module)
    for path in classes:
        module, name = path.rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), name), type), path


def test_hook_class_attributes_match_the_provider_info() -> None:
    item = get_provider_info()["connection-types"][0]
    assert GPTProtoHook.conn_type == item["connection-type"] == "gptproto"
    assert GPTProtoHook.hook_name == item["hook-name"] == "GPTProto"
    assert GPTProtoHook.conn_name_attr == "gptproto_conn_id"
    assert GPTProtoHook.default_conn_name == "gptproto_default"
    assert callable(GPTProtoHook.test_connection)


# ------------------------------------------------------------------------------- ProvidersManager


def _managers() -> list[Any]:
    """The managers that resolve hooks: core, and the task SDK's runtime one where it exists (3.3+)."""
    from airflow.providers_manager import ProvidersManager

    managers: list[Any] = [ProvidersManager()]
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:
        assert Version("3.3") > AIRFLOW_VERSION
    else:
        managers.append(ProvidersManagerTaskRuntime())
    return managers


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
@pytest.mark.parametrize("manager", _managers(), ids=lambda m: type(m).__name__)
def test_providers_manager_discovers_the_provider_and_hook(manager: Any) -> None:
    assert manager.providers[PACKAGE].version == __version__
    info = manager.hooks["gptproto"]
    assert info is not None
    assert info.hook_class_name == HOOK_CLASS
    assert info.connection_id_attribute_name == "gptproto_conn_id"
    assert info.hook_name == "GPTProto"
    assert info.package_name == PACKAGE
    assert info.connection_testable is True


# Fallback for interpreters without wtforms (Airflow < 3.2 needs it to call the legacy classmethods;
# deployments get it with the FAB provider). It mirrors the parts of the wtforms API Airflow and our hook
# touch, down to unbound fields. With real wtforms installed the stub is not used.
_WTFORMS_STUB = {
    "wtforms/__init__.py": """
        class UnboundField:
            def __init__(self, field_class, *args, **kwargs):
                self.field_class, self.args, self.kwargs = field_class, args, kwargs

        class Field:
            widget = None

            def __new__(cls, *args, **kwargs):
                return UnboundField(cls, *args, **kwargs)

        class StringField(Field): pass
        class IntegerField(Field): pass
        class PasswordField(Field): pass
        class BooleanField(Field): pass
        """,
    "wtforms/fields/__init__.py": "from wtforms import BooleanField, Field, IntegerField\n"
    "from wtforms import PasswordField, StringField\n",
    "wtforms/fields/simple.py": "from wtforms import BooleanField, PasswordField, StringField\n",
    "wtforms/validators.py": """
        class Optional:
            def __init__(self, *args, **kwargs): pass

        class NumberRange:
            def __init__(self, min=None, max=None, message=None): self.min, self.max = min, max

        class AnyOf:
            def __init__(self, values, message=None): self.values = values

        any_of = AnyOf
        """,
}

_PROBE_MANAGER = """
    import json, sys, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        from airflow.providers_manager import ProvidersManager
        pm = ProvidersManager()
        hook = pm.hooks["gptproto"]
        behaviours = pm.field_behaviours.get("gptproto")
        widgets = {
            key: {
                "field_name": w.field_name,
                "is_sensitive": w.is_sensitive,
                "field": w.field if isinstance(w.field, dict) else None,
                "field_class": getattr(getattr(w.field, "field_class", None), "__name__", None),
            }
            for key, w in pm.connection_form_widgets.items()
            if "gptproto" in key
        }
    result = {
        "hook": hook._asdict() if hook else None,
        "behaviours": behaviours,
        "widgets": widgets,
        "warnings": [str(w.message) for w in caught if "GPTProto" in str(w.message)],
    }
    with open(sys.argv[1], "w") as out:
        json.dump(result, out, default=str)
"""

# What the api-server's GET /ui/connections/hook_meta computes, in a fresh process like a fresh server.
_PROBE_UI = """
    import json, sys
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    meta = [m.model_dump(mode="json") for m in HookMetaService.hook_meta_data()]
    meta = [m for m in meta if m["connection_type"] == "gptproto"]
    with open(sys.argv[1], "w") as out:
        json.dump(meta, out, default=str)
"""


def _needs_wtforms_stub() -> bool:
    if DECLARATIVE_UI:
        return False
    try:
        importlib.import_module("wtforms")
    except ImportError:
        return True
    return False


@pytest.fixture(scope="module")
def airflow_envs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, str]]:
    """Environments for Airflow subprocesses (throw-away AIRFLOW_HOME, no examples): plain, and with
    wtforms importable for the ProvidersManager paths that need it before Airflow 3.2."""
    root = tmp_path_factory.mktemp("airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(AIRFLOW_HOME=str(root / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False", NO_COLOR="1")
    with_wtforms = dict(env)
    if _needs_wtforms_stub():
        stub = root / "stub"
        for name, text in _WTFORMS_STUB.items():
            (stub / name).parent.mkdir(parents=True, exist_ok=True)
            (stub / name).write_text(textwrap.dedent(text))
        with_wtforms["PYTHONPATH"] = os.pathsep.join(p for p in (str(stub), env.get("PYTHONPATH")) if p)
    return env, with_wtforms


@pytest.fixture(scope="module")
def subprocess_results(
    airflow_envs: tuple[dict[str, str], dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run the probes and the CLI commands concurrently (each pays Airflow's start-up once)."""
    plain, with_wtforms = airflow_envs
    work = tmp_path_factory.mktemp("probe")
    airflow_cli = str(Path(sys.executable).parent / "airflow")
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "list": ([airflow_cli, "providers", "list", "-o", "json"], plain),
        "hooks": ([airflow_cli, "providers", "hooks", "-o", "json"], plain),
        "behaviours": ([airflow_cli, "providers", "behaviours", "-o", "json"], with_wtforms),
    }
    for name, source in (("manager", _PROBE_MANAGER), ("ui", _PROBE_UI)):
        (work / f"{name}.py").write_text(textwrap.dedent(source))
        env = with_wtforms if name == "manager" else plain
        commands[name] = ([sys.executable, str(work / f"{name}.py"), str(work / f"{name}.json")], env)
    procs = {
        name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (cmd, env) in commands.items()
    }
    results: dict[str, Any] = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, f"{commands[name][0]} failed ({proc.returncode}):\n{err[-3000:]}"
            output = work / f"{name}.json"
            results[name] = json.loads(output.read_text()) if output.exists() else _json_of(out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return results


def _json_of(stdout: str) -> Any:
    """The JSON document in a CLI's stdout (log lines, which may start with "[<time>]", may precede it)."""
    lines = stdout.splitlines(keepends=True)
    for n, line in enumerate(lines):
        if line.lstrip().startswith(("[", "{")):
            try:
                return json.loads("".join(lines[n:]))
            except json.JSONDecodeError:
                continue
    raise AssertionError(f"no JSON document in the CLI output: {stdout[-500:]!r}")


def test_cli_providers_list(subprocess_results: dict[str, Any]) -> None:
    rows = [r for r in subprocess_results["list"] if r["package_name"] == PACKAGE]
    assert len(rows) == 1
    assert rows[0]["version"] == __version__
    assert rows[0]["description"].startswith("GPTProto video generation")


def test_cli_providers_hooks(subprocess_results: dict[str, Any]) -> None:
    rows = [r for r in subprocess_results["hooks"] if r.get("connection_type") == "gptproto"]
    assert rows == [
        {
            "connection_type": "gptproto",
            "class": HOOK_CLASS,
            "conn_id_attribute_name": "gptproto_conn_id",
            "package_name": PACKAGE,
            "hook_name": "GPTProto",
        }
    ]


def test_cli_providers_behaviours(subprocess_results: dict[str, Any]) -> None:
    assert {"field_behaviours": "gptproto"} in subprocess_results["behaviours"]


def test_probe_hook_info(subprocess_results: dict[str, Any]) -> None:
    hook = subprocess_results["manager"]["hook"]
    assert hook["hook_class_name"] == HOOK_CLASS
    assert hook["connection_type"] == "gptproto"
    assert hook["connection_testable"] is True


def test_field_behaviours_registered(subprocess_results: dict[str, Any]) -> None:
    assert subprocess_results["manager"]["behaviours"] == BEHAVIOUR


def test_connection_form_widgets_registered(subprocess_results: dict[str, Any]) -> None:
    widgets = subprocess_results["manager"]["widgets"]
    assert set(widgets) == WIDGETS
    assert {w["field_name"] for w in widgets.values()} == EXTRAS
    assert not any(w["is_sensitive"] for w in widgets.values())
    if DECLARATIVE_UI:
        # Read from conn-fields: API-format dicts, the hook classmethods are not consulted.
        timeout = widgets["extra__gptproto__timeout"]["field"]
        assert timeout == {
            "value": DEFAULT_TIMEOUT_SECONDS,
            "schema": {
                "type": ["integer", "null"],
                "minimum": 1,
                "default": DEFAULT_TIMEOUT_SECONDS,
                "title": "Request timeout (seconds)",
            },
            "description": conn_fields()["timeout"]["description"],
            "source": None,
        }
        assert widgets["extra__gptproto__retry_limit"]["field"]["value"] == DEFAULT_RETRY_LIMIT
    else:
        # Built by GPTProtoHook.get_connection_form_widgets(): wtforms integer fields, and a checkbox.
        classes = {w["field_name"]: w["field_class"] for w in widgets.values()}
        assert classes == {**dict.fromkeys(EXTRAS, "IntegerField"), "allow_private_urls": "BooleanField"}


def test_no_deprecation_warning_for_the_hook_on_declarative_airflow(
    subprocess_results: dict[str, Any],
) -> None:
    warnings = subprocess_results["manager"]["warnings"]
    if DECLARATIVE_UI:
        assert warnings == []  # declarative metadata wins: legacy classmethods are never called
    else:
        assert not any("deprecated" in w for w in warnings)  # 3.1 has no such deprecation


def test_connection_form_metadata_for_the_ui(subprocess_results: dict[str, Any]) -> None:
    """What ``GET /ui/connections/hook_meta`` returns for the gptproto connection type."""
    (meta,) = subprocess_results["ui"]
    assert meta["hook_class_name"] == HOOK_CLASS
    assert meta["hook_name"] == "GPTProto"
    if Version("3.1") > AIRFLOW_VERSION and _needs_wtforms_stub():
        # Airflow 3.0 reads hook form metadata only with wtforms importable (the FAB provider brings
        # it): without it every provider's connection form is the generic one (docs/airflow-versions.md).
        assert meta["standard_fields"] is None and meta["extra_fields"] is None
        return
    standard = meta["standard_fields"]
    assert standard["url_schema"]["hidden"] is True
    assert standard["port"]["hidden"] is True
    assert standard["login"]["hidden"] is True
    assert standard["host"] == {
        "hidden": False,
        "title": "Base URL",
        "placeholder": "https://gptproto.com (default when empty)",
    }
    assert standard["password"]["title"] == "API Key"
    assert standard["password"]["hidden"] is False
    extra = meta["extra_fields"]
    assert set(extra) == EXTRAS
    assert extra["max_bytes"]["value"] == 4 * 1024**3
    assert extra["allow_private_urls"]["value"] is False
    assert extra["timeout"]["value"] == DEFAULT_TIMEOUT_SECONDS
    assert extra["retry_limit"]["value"] == DEFAULT_RETRY_LIMIT
    assert extra["timeout"]["schema"]["title"] == "Request timeout (seconds)"
    assert extra["retry_limit"]["schema"]["title"] == "Retry limit"
    assert extra["timeout"]["schema"]["type"] == ["integer", "null"]
    assert extra["timeout"]["description"] == conn_fields()["timeout"]["description"]
    if DECLARATIVE_UI:
        assert extra["timeout"]["schema"]["minimum"] == 1
