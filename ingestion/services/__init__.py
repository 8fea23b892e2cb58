"""The writes of ingestion, one module per job: `upload` (a file into a stored, pending image),
`pipeline` (pending images into vectors), `deletion` (an image or a whole tenant), `requeue` (failed,
stuck and stale images back into the pipeline)."""
