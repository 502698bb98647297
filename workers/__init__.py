"""RQ at the edge: jobs that take inbox ids, the worker process and the inbox sweeper."""
