"""Run a DAG of ``dags/`` with ``DAG.test()`` in-process and read back what it left in the DB."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

try:
    from airflow.dag_processing.dagbag import DagBag

    SYNC_BEFORE_TEST = False  # DAG.test() syncs the bundle itself (3.2+)
except ImportError:  # Airflow < 3.2: DAG.test() expects the DAG already serialized, as the CLI does
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    SYNC_BEFORE_TEST = True


@dataclass
class RunResult:
    state: str
    run_id: str = ""
    # (task_id, map_index) -> (state, try_number)
    tis: dict[tuple[str, int], tuple[str | None, int]] = field(default_factory=dict)
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)

    def ti_state(self, task_id: str, map_index: int = -1) -> str | None:
        return self.tis[(task_id, map_index)][0]

    def tries(self, task_id: str, map_index: int = -1) -> int:
        return self.tis[(task_id, map_index)][1]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self.xcoms.get((task_id, map_index, key))


def run_dag(dag_id: str, **conf: Any) -> RunResult:
    bag = DagBag(include_examples=False) if _takes_include_examples() else DagBag()
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found; import errors: {bag.import_errors}"
    if SYNC_BEFORE_TEST:
        _reserialize()
    run = dag.test(run_conf=conf or None)
    with create_session() as session:
        result = RunResult(state=str(run.state), run_id=run.run_id)
        for ti in run.get_task_instances(session=session):
            result.tis[(ti.task_id, ti.map_index)] = (str(ti.state) if ti.state else None, ti.try_number)
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id)
        for row in rows:
            result.xcoms[(row.task_id, row.map_index, row.key)] = XComModel.deserialize_value(row)
    return result


def _reserialize() -> None:
    """What ``airflow dags reserialize`` does on 3.0/3.1: register the bundle, then write its DAGs."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.models.dagbag import sync_bag_to_db
    except ImportError:  # Airflow 3.0: the DagBag method that 3.1 made a function

        def sync_bag_to_db(bag: Any, bundle_name: str, bundle_version: str | None) -> None:
            bag.sync_to_db(bundle_name, bundle_version=bundle_version)

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        bag = DagBag(bundle.path, bundle_path=bundle.path, include_examples=False)
        sync_bag_to_db(bag, bundle.name, bundle_version=bundle.get_current_version())


def _takes_include_examples() -> bool:
    return "include_examples" in inspect.signature(DagBag.__init__).parameters
