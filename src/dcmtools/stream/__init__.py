"""The record stream every command shares: inputs, records and exit statuses, outputs
written atomically, process pools, and the journal of work that outlives one run."""
