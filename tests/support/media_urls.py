"""The demo's URLs plus the uploaded media, served from the default storage (the tests' storage
is in memory, which the live server's thread shares): browser tests whose pages show images
(renditions) set ``ROOT_URLCONF`` to this module, so their screenshots show them."""

import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import re_path

from demo.urls import urlpatterns as demo_urlpatterns


def media(request, path: str):
    if ".." in path.split("/") or not default_storage.exists(path):
        raise Http404
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return FileResponse(default_storage.open(path), content_type=content_type)


urlpatterns = [re_path(r"^media/(?P<path>.+)$", media), *demo_urlpatterns]
