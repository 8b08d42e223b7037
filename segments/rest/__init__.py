"""The segments app's REST API (Django REST framework): client event intake.

Thin edges only: parse and check the request here, record through :mod:`segments.api`.
"""
