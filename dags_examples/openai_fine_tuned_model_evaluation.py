"""
### Evaluate each new fine-tuned support model

Scheduled on the `support_assistant_fine_tuned_model` Asset: every time
`openai_fine_tune_data_pipeline` publishes a fine-tuned model, this DAG runs with the model name and
the job's final metrics in the triggering Asset event.

1. **collect_candidates**: reads the model name, job id and final metrics from the event(s).
2. **gate_on_metrics**: a quality gate on the final validation loss (`params.max_valid_loss`);
   a model above it is marked `hold`, below it `promote`. Extend this DAG with your own evaluation
   set (for example a Batch job of held-out questions against the model) before promoting.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

FINE_TUNED_MODEL = Asset(name="support_assistant_fine_tuned_model")


@dag(
    dag_id="openai_fine_tuned_model_evaluation",
    schedule=[FINE_TUNED_MODEL],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"max_valid_loss": 1.0},
    tags=["openai", "fine-tuning", "evaluation"],
    doc_md=__doc__,
)
def openai_fine_tuned_model_evaluation() -> None:
    @task
    def collect_candidates() -> list[dict[str, Any]]:
        context = get_current_context()
        events = context["triggering_asset_events"][FINE_TUNED_MODEL]
        candidates = [dict(event.extra) for event in events if event.extra.get("fine_tuned_model")]
        for candidate in candidates:
            print(f"Candidate {candidate['fine_tuned_model']} from job {candidate['job_id']}: {candidate['metrics']}")
        return candidates

    @task
    def gate_on_metrics(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limit = float(get_current_context()["params"]["max_valid_loss"])
        decisions = []
        for candidate in candidates:
            metrics = candidate.get("metrics") or {}
            loss = metrics.get("valid_loss")
            if loss is None:
                loss = metrics.get("train_loss")
            decision = "promote" if loss is not None and float(loss) <= limit else "hold"
            decisions.append({"fine_tuned_model": candidate["fine_tuned_model"], "loss": loss, "decision": decision})
            print(f"{candidate['fine_tuned_model']}: loss {loss} vs limit {limit} -> {decision}")
        return decisions

    gate_on_metrics(collect_candidates())


evaluation_dag = openai_fine_tuned_model_evaluation()
