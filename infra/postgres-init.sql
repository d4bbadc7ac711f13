-- One Postgres for both services: Prefect's orchestration database and MLflow's tracking/registry database.
CREATE DATABASE prefect;
CREATE DATABASE mlflow;
