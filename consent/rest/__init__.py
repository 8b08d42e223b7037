"""The suite's HTTP edge (Django REST framework), and the consent app's own endpoints.

Every JSON endpoint of the suite (consent's here, and the REST packages of the apps above)
is an :class:`~consent.rest.base.APIEndpoint`: the same body-size-bounded parsers, the same
throttle keyed by a keyed hash of the client address, the same error envelope. The apps above
reach these pieces through :mod:`consent.api` only.
"""
