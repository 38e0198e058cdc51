"""Tests of the tools (tools/): the demo seeder and the Celery stack launcher."""
