"""The names a configuration's scattering can be asked for (no heavy imports: the CLI
takes its choices from here)."""

#: ``intensity``: I(q) with its oriented cubes; ``effective``: I / (N <P>); ``structure``:
#: S(q) of the centres alone (see :mod:`saxsred.structures.scattering`).
KINDS = ("intensity", "effective", "structure")
#: ``exact``: the oriented-cube powder average; ``decoupling``: the fast approximation.
METHODS = ("exact", "decoupling")
