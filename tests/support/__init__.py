"""Test-only helpers, one home each (the emulator fixtures themselves are the package's pytest plugin,
``airflow_openai_files/emulator/pytest_plugin.py``: ``openai_files_emulator``, ``openai_files_connection``,
``openai_files_emulators``, settings by ``@pytest.mark.openai_files_emulator(...)``).

- ``emulators``: named emulator settings (``FILES_STAY_UPLOADED``, ``FILE_STATUS_ERRORS``).
- ``triggers``: ``run_trigger`` / ``trigger_event`` / ``collect``: run a trigger as the triggerer does.
- ``airflow_db``: one migrated metadata database per worker, copied per test (``airflow_home``).
- ``connections``: connections through ``AIRFLOW_CONN_*``; ``free_port``.
- ``azure``: the ``flavor`` fixtures (a test once per OpenAI and Azure OpenAI).
- ``task_helpers``, ``files``, ``hooks``: task contexts, JSONL bodies, digests, hooks with recorded waits.
- ``s3``, ``tls``, ``sink``, ``gate``: loopback peers (moto's S3, a scripted TLS server, a byte sink).
- ``memory_probe``, ``processes``: fresh-process measurements.
- ``airflow_cluster``, ``distributed_harness``, ``services``, ``worker_identity``: ``make test-distributed``.
"""
