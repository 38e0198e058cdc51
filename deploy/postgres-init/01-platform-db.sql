-- Runs once, when the postgres container initialises an empty data volume (the official image
-- runs /docker-entrypoint-initdb.d/*.sql with psql as POSTGRES_USER, connected to POSTGRES_DB).
--
-- Creates the platform's own database and role, next to Airflow's metadata database "airflow":
-- the platform tables (runs, registry, predictions) and, in this stack, the churn source table
-- customer_snapshots live in "platform". The platform role cannot connect to "airflow", so task
-- code never reaches Airflow's metadata database directly.
--
-- The role's name and password come from the container's environment (psql's \getenv),
-- so nothing secret is written here.
\set ON_ERROR_STOP on
\getenv platform_user PLATFORM_DB_USER
\getenv platform_password PLATFORM_DB_PASSWORD

CREATE ROLE :"platform_user" LOGIN PASSWORD :'platform_password';
CREATE DATABASE platform OWNER :"platform_user";
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
