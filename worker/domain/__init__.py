"""The replication domain: item states, reason codes, IMS naming rules and the item spec. No Celery, no HTTP."""
