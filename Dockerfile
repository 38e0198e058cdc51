# Airflow image for the batch ML platform: the official Airflow 3.3.2 image plus the
# project's pinned dependencies and code. Used by every Airflow service in docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11

# The base image already runs as "airflow" (UID 50000); say so, because pip must install into that
# user's environment (the official image refuses root pip installs). Numeric, so a runtime that
# enforces non-root users (e.g. Kubernetes runAsNonRoot) can verify it.
USER 50000

COPY --chown=airflow:root requirements.txt constraints.txt /opt/airflow/

# constraints.txt pins the project's resolved set, with the celery provider and celery[redis]==5.6.3
# (requirements.txt says why not the provider's newest celery, 5.7.0).
RUN pip install --no-cache-dir \
        -r /opt/airflow/requirements.txt \
        -c /opt/airflow/constraints.txt

COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
# Airflow's local settings, in $AIRFLOW_HOME/config (on every process's sys.path): a Celery worker
# imports a scoring shard's modules once, before its tasks fork from it (include/preload.py).
COPY --chown=airflow:root config/ /opt/airflow/config/
COPY --chown=airflow:root data/ /opt/airflow/data/

# The simple auth manager's password file lives here (a named volume written by airflow-init).
# Group root may write, as in the official image, so an arbitrary UID with GID 0 still works.
RUN install -d -m 0770 /opt/airflow/auth

# "import include..." works in every Airflow process (tasks, DAG parsing, plugins).
ENV PYTHONPATH=/opt/airflow
