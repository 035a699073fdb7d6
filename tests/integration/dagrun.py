"""Run a DAG of ``dags/`` with ``DAG.test()`` in-process and read back what it left in the DB."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.models.xcom import XComModel
from airflow.utils.session import create_session


@dataclass
class RunResult:
    state: str
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
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(include_examples=False) if _takes_include_examples() else DagBag()
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found; import errors: {bag.import_errors}"
    run = dag.test(run_conf=conf or None)
    with create_session() as session:
        result = RunResult(state=str(run.state))
        for ti in run.get_task_instances(session=session):
            result.tis[(ti.task_id, ti.map_index)] = (str(ti.state) if ti.state else None, ti.try_number)
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id)
        for row in rows:
            result.xcoms[(row.task_id, row.map_index, row.key)] = XComModel.deserialize_value(row)
    return result


def _takes_include_examples() -> bool:
    import inspect

    from airflow.dag_processing.dagbag import DagBag

    return "include_examples" in inspect.signature(DagBag.__init__).parameters
