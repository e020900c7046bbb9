"""The evaluation report: one self-contained HTML page with plots, for humans.

``data`` reads the report's inputs from PostgreSQL (queries in ``sql/queries/report/*.sql``),
``plots`` and ``sections`` turn them into figures and readable sections (pure functions),
``page`` renders the HTML, ``job`` wires them for the daily DAG and ``python -m jobs.report``.
"""
