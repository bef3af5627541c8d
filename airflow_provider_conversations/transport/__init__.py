"""One request to a vendor: connection settings, the session and its redirect policy, retries and error mapping,
the vendors' error envelopes and the rate-limit gate. Nothing here pages, and nothing knows about Airflow tasks."""
