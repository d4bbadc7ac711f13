# The MLflow tracking server with the Postgres driver baked in (no pip at container start).
# Built by infra/compose.yaml (service `mlflow`); the tag is the client version in the project's venv.
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir "psycopg2-binary==2.9.10"
