"""The agent: record a program's HTTP traffic without editing the program.

``harlem-run`` (or the ``harlem.pth`` hook with ``HARLEM_OUTPUT`` set) starts
:func:`harlem.agent.bootstrap.activate` inside the program's interpreter. Nothing is imported
here: activation happens during the program's start-up and must stay cheap.
"""
