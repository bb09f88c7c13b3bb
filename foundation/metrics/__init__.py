"""Prometheus metrics.

registry (every series and the functions that record them; what the apps call),
middleware (HTTP request timing), celery_queue (queue length at scrape time) and view
(GET /metrics and gunicorn's multiprocess clean-up).
"""
