"""Developer harnesses run from a checkout (``make demo``, ``make airflow``, ``make reliability``).

Not part of the installed package: they drive the operators against the simulators, so keeping them out of
``airflow_provider_conversations.testing`` leaves the shipped simulators free of any import of the runtime.
"""
