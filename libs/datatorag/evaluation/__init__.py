"""The evaluation harness: labelled questions through a running gateway, retrieval and answer
quality out.

    datatorag eval QUESTIONS.jsonl [--url ...] [--k 5] [--json]

or, importable::

    from datatorag.evaluation import load_questions, run_eval
    report = await run_eval(client, load_questions(path), k=5)
    print(report.table())

``client`` is any ``httpx.AsyncClient`` that reaches the gateway with an API key (over the
network, or an ASGI transport in-process). Metric definitions: ``datatorag.evaluation.metrics``.
"""

from datatorag.evaluation.harness import EvalReport, QuestionResult, run_eval
from datatorag.evaluation.questions import Label, Question, load_questions, sample_questions

__all__ = [
    "EvalReport",
    "Label",
    "Question",
    "QuestionResult",
    "load_questions",
    "run_eval",
    "sample_questions",
]
