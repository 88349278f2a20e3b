"""Documents over their whole life, beyond the pipeline: deleting a document or a source, and
the per-source overview an operator reads (``GET /v1/sources``)."""
