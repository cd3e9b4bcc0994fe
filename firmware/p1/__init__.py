"""Exact, streaming P1/HAN telegram parser (sans-IO; CPython and MicroPython).

`p1.framer.Framer` frames bytes into telegrams, `p1.parse.parse` decodes one,
`p1.readings.readings` names its values, `p1.jsonout.dumps` writes them.
"""

VERSION = "0.1.0"
