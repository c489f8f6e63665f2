"""Signal models: labels, validation splits, training, the registry and inference.

Submodules are imported where used (``from tradesignals.models.labels import …``) so that loading
one of them — the engine loading ``inference`` on the tick path — never compiles the others' numba
kernels or imports their libraries.
"""
