"""Form fields shared by the admin screens of every app."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .jsoninput import JSONInputError, loads


class StrictJSONField(forms.JSONField):
    """Django's ``JSONField`` reading what the editor typed with :func:`tailored.jsoninput.
    loads`: JSON nested too deep, with a key twice, ``NaN``, ``\\u0000`` or an unpaired
    surrogate is a form error saying so, never a server error (the standard library recurses
    until ``RecursionError`` and PostgreSQL refuses ``\\u0000``). Use it for every JSON field of
    an admin form (``Meta.field_classes``)."""

    max_bytes = 64 * 1024
    default_error_messages = {
        "invalid": _("Enter valid JSON (%(error)s)."),
    }

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                loads(value, max_bytes=self.max_bytes)
            except JSONInputError as exc:
                raise ValidationError(
                    self.error_messages["invalid"], code="invalid", params={"error": str(exc)}
                ) from exc
        return super().to_python(value)

    def bound_data(self, data, initial):
        # Redisplaying a refused value must not parse it with the standard library either.
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return loads(data, max_bytes=self.max_bytes)
        except JSONInputError:
            return forms.fields.InvalidJSONInput(data)
