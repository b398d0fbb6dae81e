"""Reports of a run's verdicts: the results table, its files, drift against a baseline, and the plugin.

``plugin`` is the pytest plugin class (``--judge-report``, ``--judge-baseline``,
``--judge-max-drop``) that the core plugin registers; ``table`` builds and reads the pandas results
table; ``drift`` compares it with a baseline; ``files`` writes it by suffix (``formats`` lists the
suffixes); ``markdown`` and ``html`` render it for people.

This package, ``formats`` and ``plugin`` do not import pandas: the plugin imports the other modules
inside its hooks, only when a run asks for the table, so pytest start-up never pays for pandas.
"""
