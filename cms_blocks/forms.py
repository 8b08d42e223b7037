"""The segment form of the admin: the rule edited with the visual builder, validated with
messages that say where the problem is and how to fix it."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.models import ReferenceIndex

from segments.api import rule_problems, segment_model
from tailored.forms import StrictJSONField
from tailored.jsoninput import JSONInputError, loads

from .widgets import RuleBuilderWidget


def readable_path(path: str) -> str:
    """'conditions[1].condition.window' -> 'condition 2 > negated condition > window'."""
    words = []
    for part in path.split("."):
        m = re.fullmatch(r"conditions\[(\d+)\]", part)
        if m:
            words.append(f"condition {int(m.group(1)) + 1}")
        elif part == "condition":
            words.append("negated condition")
        elif part:
            words.append(part.replace("_", " "))
    return " > ".join(words)


def problem_messages(tree) -> list[str]:
    """Validation messages for a rule, each naming where the problem is."""
    return [
        f"{readable_path(path)}: {message}" if path else message
        for path, message in rule_problems(tree)
    ]


class RuleField(StrictJSONField):
    """A rule: valid JSON as :func:`tailored.jsoninput.loads` reads it (not too deep, no
    duplicate key...), and a condition tree the engine accepts."""

    widget = RuleBuilderWidget

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                loads(value, max_bytes=self.max_bytes)
            except JSONInputError as exc:
                raise ValidationError(
                    _(
                        "The rule is not valid JSON (%(error)s). Fix the JSON or build the rule "
                        "with the builder."
                    ),
                    code="invalid",
                    params={"error": str(exc)},
                ) from exc
        return super().to_python(value)

    def validate(self, value):
        super().validate(value)
        messages = problem_messages(value)
        if messages:
            raise ValidationError(messages, code="invalid_rule")


class SegmentForm(WagtailAdminModelForm):
    rule = RuleField(
        label=_("Rule"),
        help_text=_("Who is in the segment. Build it with conditions and groups."),
    )

    class Meta:
        model = segment_model()
        fields = [
            "name",
            "slug",
            "description",
            "rule",
            "priority",
            "enabled",
            "persist_for",
            "sample_percent",
            "static",
        ]

    def clean_slug(self):
        """Content names a segment by its slug: a segment in use keeps it (else its variants
        would silently stop being shown, and a new segment given the old slug would take
        them over)."""
        slug = self.cleaned_data.get("slug")
        old = self.instance.slug if self.instance.pk else None
        if old and slug != old:
            used = ReferenceIndex.get_references_to(self.instance)
            count = used.values("base_content_type", "object_id").distinct().count()
            if count:
                raise ValidationError(
                    ngettext(
                        "This segment is used by %(count)d object (see its usage), which names "
                        "it “%(slug)s”: its slug cannot change while it is in use.",
                        "This segment is used by %(count)d objects (see its usage), which name "
                        "it “%(slug)s”: its slug cannot change while it is in use.",
                        count,
                    )
                    % {"count": count, "slug": old},
                    code="slug_in_use",
                )
        return slug

    def _post_clean(self):
        own = list(self.errors["rule"]) if "rule" in self.errors else None
        super()._post_clean()
        # Segment.clean() compiles the rule too (the unchanged one when the field failed):
        # the field's own messages are the ones that say where and how to fix.
        if own is not None:
            self.errors["rule"] = self.error_class(own)
