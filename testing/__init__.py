"""Helpers shared by the test suites of every app (threads, database connections).

Not a test suite itself: pytest collects nothing here. App tests import these helpers
instead of importing one another's test modules.
"""
