"""Scale out: Airflow on the CeleryExecutor with several workers on one machine (`make up-celery`)."""
