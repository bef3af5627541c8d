"""Chatterbox, a fictional sixth vendor that lives entirely under ``tests/``: the worked example of adding a vendor.

``hook.py`` declares it, ``simulator.py`` serves it on 127.0.0.1, ``contract_fixture.py`` puts it through the
contract suite and ``test_sixth_vendor.py`` runs the hook, the operators and the sensor against it.
"""
