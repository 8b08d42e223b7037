"""File exports: a mirror destination written whole, as CSV or JSONL, to Django storage
(``CHANNELS_EXPORT_STORAGE`` under ``CHANNELS_EXPORT_PREFIX``), on a schedule
(``options["every_hours"]``) or on demand from the admin. Each export replaces the previous
file, so a visitor who left, withdrew or was erased is gone from the next one; an erasure or a
withdrawal writes it again at once."""

import csv
import io

import orjson
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from ..conf import get_setting
from .base import BaseBackend, Result

FIELDS = ("segment", "identifier_type", "identifier", "since")


class FileBackend(BaseBackend):
    def path(self) -> str:
        fmt = self.format()
        prefix = get_setting("CHANNELS_EXPORT_PREFIX").strip("/")
        return f"{prefix}/destination-{self.destination.pk}.{fmt}"

    def format(self) -> str:
        return "jsonl" if self.destination.options.get("format") == "jsonl" else "csv"

    def export(self, rows: list[dict]) -> None:
        if self.format() == "jsonl":
            data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        else:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            data = out.getvalue().encode()
        storage = storages[get_setting("CHANNELS_EXPORT_STORAGE")]
        path = self.path()
        if storage.exists(path):
            storage.delete(path)
        storage.save(path, ContentFile(data))

    def rows(self) -> list[dict]:
        """The audience the destination holds: one row per member and segment."""
        from ..models import AudienceMember

        return [
            {
                "segment": segment,
                "identifier_type": kind,
                "identifier": _cell(value),
                "since": changed.isoformat(),
            }
            for segment, kind, value, changed in AudienceMember.objects.filter(
                destination=self.destination, active=True
            )
            .order_by("segment", "identifier")
            .values_list("segment", "identifier_type", "identifier", "changed_at")
        ]

    def write(self) -> str:
        """Write the export now; returns its path in the export storage."""
        return self._write(self.rows())

    def _write(self, rows: list[dict]) -> str:
        from django.utils import timezone

        from ..models import Destination

        self.export(rows)
        Destination.objects.filter(pk=self.destination.pk).update(last_export_at=timezone.now())
        return self.path()

    def send(self, message_id: str, kind: str, items: list[dict], created: str = "") -> Result:
        # Changes reach a file at its next export; a withdrawal or an erasure rewrites it now.
        if any(i["type"] in ("consent.withdrawn", "visitor.erased") for i in items):
            rows = self.rows()
            # Reading the audience may take a while: a worker that no longer holds the
            # destination leaves the file to the one that does.
            if not self.keep_lease():
                return Result(
                    ok=False, response="stopped: the worker no longer held the destination"
                )
            self._write(rows)
        return Result(ok=True, status=None, response="applied to the export")


def _cell(value: str) -> str:
    # A spreadsheet must not read an identifier as a formula.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
