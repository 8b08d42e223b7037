from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.contrib.sitemaps.views import sitemap
from wagtail.documents import urls as wagtaildocs_urls

from consent.api import SchemaView

urlpatterns = [
    path("django-admin/", admin.site.urls),
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("consent/", include("consent.urls")),
    path("api/", include("segments.urls")),
    path("api/personalization/", include("personalization.urls")),
    path("api/experiments/", include("experiments.urls")),
    path("api/channels/", include("tailored_channels.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("sitemap.xml", sitemap),
    path("tailored/", include("cms_blocks.urls")),
    path("-/", include("tailored.urls")),  # health and metrics (docs/operations.md)
]

if settings.DEBUG:
    from django.conf.urls.static import static
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns += [path("", include(wagtail_urls))]
