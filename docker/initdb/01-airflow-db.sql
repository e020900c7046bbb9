-- Airflow's metadata lives in its own database next to the pipeline's.
CREATE DATABASE airflow OWNER push;
