"""The run report (report.html) and the pushed model's card (model_card.md, model_card.html),
written from a record of the run: by the RunReport component at the end of the pipeline, and
from ML Metadata for any run, failed ones included (`python -m pipeline.inspect_mlmd report`,
and run_local at the end of every run). docs/report.md describes both."""
