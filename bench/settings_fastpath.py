"""Temporary (issue #11, point 8): the plugin's settings with the request path's hand-written
socket client (``OPTIONS["FASTPATH"]``), measured side by side with redis-py's connection."""

from copy import deepcopy

from bench.settings import *  # noqa: F403
from bench.settings import SEGMENTS_BACKEND

SEGMENTS_BACKEND = deepcopy(SEGMENTS_BACKEND)
SEGMENTS_BACKEND["OPTIONS"]["FASTPATH"] = True
