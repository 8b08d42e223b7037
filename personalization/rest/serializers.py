"""Response shapes of the personalization endpoints (also their OpenAPI schema)."""

from rest_framework import serializers


class VisitorSerializer(serializers.Serializer):
    consented = serializers.BooleanField(
        help_text="Whether the visitor consented to personalization (stored segments count)."
    )
    segments = serializers.ListField(
        child=serializers.CharField(),
        help_text="Slugs of the visitor's segments: without consent, context-only ones only.",
    )


class PageVariantSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()


class PageMetaSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="app_label.ModelName, as in Wagtail's API v2.")
    slug = serializers.CharField()
    html_url = serializers.CharField(allow_null=True)
    canonical_url = serializers.CharField(allow_null=True)
    first_published_at = serializers.DateTimeField(allow_null=True)
    variant = PageVariantSerializer(
        allow_null=True, help_text="The page variant served instead of this page, if any."
    )


class PersonalisedPageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    meta = PageMetaSerializer()
    visitor = VisitorSerializer()
    fields = serializers.DictField(
        child=serializers.JSONField(),
        help_text=(
            "Each StreamField of the page as Wagtail's API v2 gives it "
            "(a list of {type, value, id}), with personalised blocks resolved for this "
            "visitor: {block, variant, index, content}."
        ),
    )
