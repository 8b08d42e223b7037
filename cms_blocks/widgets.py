"""Admin widgets: the visual rule builder and the segment chooser."""

from django import forms
from django.urls import NoReverseMatch, reverse
from django.utils.html import json_script
from wagtail.snippets.widgets import AdminSnippetChooser

from segments.api import describe_rule, rule_catalog, segment_model
from tailored.jsoninput import JSONInputError, loads


class RuleBuilderWidget(forms.Textarea):
    """Edits a segment's rule (a JSON condition tree) with nestable groups of conditions.

    The JSON lives in an ordinary textarea: without JavaScript the editor edits raw JSON and the
    form validates it as usual. With JavaScript (``cms_blocks/rule-builder.js``, no build step)
    the textarea is hidden behind a builder that rewrites it on every change, and shows the
    rule in plain words, its estimated size and the validation messages, next to the condition
    they concern, from the admin's rule-check endpoint (debounced).
    """

    template_name = "cms_blocks/widgets/rule_builder.html"

    def __init__(self, attrs=None):
        super().__init__(attrs={"rows": 12, "class": "rule-builder__json", **(attrs or {})})

    class Media:
        css = {"all": ["cms_blocks/rule-builder.css"]}
        js = ["cms_blocks/rule-builder.js"]

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        try:
            check_url = reverse("cms_blocks_admin:rule_check")
        except NoReverseMatch:  # admin URLs not installed: the builder still edits the JSON
            check_url = ""
        try:
            tree = loads(value) if isinstance(value, str) and value else None
        except JSONInputError:
            tree = None
        element_id = f"{context['widget']['attrs'].get('id') or name}-catalog"
        context["builder"] = {
            "catalog": json_script(rule_catalog(), element_id),
            "catalog_id": element_id,
            "check_url": check_url,
            "description": describe_rule(tree) if tree is not None else "",
        }
        return context


class SegmentChooser(AdminSnippetChooser):
    """Choose a segment in any panel: ``FieldPanel("segment", widget=SegmentChooser)`` on a
    foreign key to the segment model (the snippet's chooser, with search)."""

    def __init__(self, **kwargs):
        super().__init__(model=segment_model(), **kwargs)
