"""The local development environment: the embedded PostgreSQL, Java and PostgreSQL fetched
from the package index when the system has none, Airflow configured against them, and the
demo. None of it ships in the image; the product (``jobs``) never imports it."""
