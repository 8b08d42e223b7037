"""The rule builder's check endpoint: problems, description and estimated size of a rule."""

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import View

from segments.api import BackendUnavailable, describe_rule, estimate_rule_size, rule_problems
from tailored.jsoninput import JSONInputError, loads

from ..forms import readable_path
from ..permissions import can_edit_segments

MAX_RULE_BYTES = 64 * 1024


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class RuleCheckView(View):
    """``POST {"rule": <tree>}`` → the rule's problems (with their paths), its description and,
    when it is valid, its estimated size from a sample of stored profiles. Needs permission to
    add or change segments. The builder calls it, debounced, while the editor works."""

    http_method_names = ["post"]

    def post(self, request):
        if not can_edit_segments(request.user):
            return _json_error(_("You may not edit segments."), 403)
        if len(request.body) > MAX_RULE_BYTES:
            return _json_error(_("The rule is too large."), 413)
        try:
            payload = loads(request.body or b"null")
        except JSONInputError as exc:
            return _json_error(_("The request is not valid JSON: %(why)s") % {"why": exc}, 400)
        if not isinstance(payload, dict) or "rule" not in payload:
            return _json_error(_('Send {"rule": ...}.'), 400)
        rule = payload["rule"]
        problems = rule_problem_list(rule)
        result = {"problems": problems, "description": describe_rule(rule), "estimate": None}
        if not problems:
            try:
                result["estimate"] = estimate_rule_size(rule)
            except BackendUnavailable:
                result["estimate_error"] = _("The profile store cannot be reached right now.")
        return JsonResponse(result)


def rule_problem_list(rule) -> list[dict]:
    return [
        {"path": path, "where": readable_path(path), "message": message}
        for path, message in rule_problems(rule)
    ]
