"""The identifier options the data-subject request commands share."""

from django.core.management.base import CommandError

from consent.privacy import Subject, UnknownSubject, find_subject


def add_subject_arguments(parser) -> None:
    parser.add_argument(
        "id",
        nargs="?",
        help="The visitor's pseudonymous key (or, with --raw, the identifier in their cookie).",
    )
    parser.add_argument(
        "--raw", action="store_true", help="ID is the raw identifier from the visitor's cookie."
    )
    parser.add_argument(
        "--source",
        help="With --external-id: the import source the customer's events came from "
        "(import_events --source).",
    )
    parser.add_argument(
        "--external-id", help="The customer's id in that source (a CRM's customer number)."
    )
    parser.add_argument("--user", help="The primary key of a site account linked at login.")
    parser.add_argument("--username", help="The username of a site account linked at login.")


def subject_from_options(options) -> Subject:
    if options["source"] and not options["external_id"]:
        raise CommandError("--source goes with --external-id.")
    value = options["id"]
    try:
        subject = find_subject(
            key=value if value and not options["raw"] else None,
            raw_id=value if value and options["raw"] else None,
            source=options["source"],
            external_id=options["external_id"],
            user_id=options["user"],
            username=options["username"],
        )
    except UnknownSubject as exc:
        raise CommandError(str(exc)) from None
    if not subject.keys:
        raise CommandError("No visitor profile is linked to this account.")
    return subject
