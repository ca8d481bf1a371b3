"""The test suite, a package mirroring the source (tests/<layer>/...).

Every folder has an ``__init__.py``: test modules import by their dotted path (``tests.planners.test_plan_format``),
so two folders may hold modules of the same name. Shared helpers live in ``tests/support``.
"""
