from django.core.management.base import BaseCommand, CommandError

from segments.backends import get_backend
from segments.backends.base import BackendUnavailable, partition_count_problem


class Command(BaseCommand):
    help = (
        "Record PARTITIONS as the store's partition count. While PARTITIONS is being raised "
        "(PREVIOUS_PARTITIONS set), once every web process and worker runs with the new count: "
        "mark where each old partition's earlier events end, so the drains serve the new "
        "partitions after those. Without PREVIOUS_PARTITIONS (a count changed with the site "
        "stopped): only once every partition of the old count is drained (docs/operations.md)."
    )

    def handle(self, *args, **options):
        backend = get_backend()
        try:
            stored = backend.stored_partitions()
            if backend.previous_partitions:
                self._seal_raise(backend, stored)
            else:
                self._record(backend, stored)
        except BackendUnavailable as exc:
            raise CommandError(f"The store does not answer ({exc}); nothing was changed.") from exc

    def _seal_raise(self, backend, stored: int | None) -> None:
        problem = partition_count_problem(backend.partitions, backend.previous_partitions, stored)
        if problem:
            # The raise would seal a store whose waiting events were recorded by a third count.
            raise CommandError(problem)
        fences = backend.seal_resize()
        self.stdout.write(
            f"Sealed {len(fences)} old partitions; partitions {backend.previous_partitions} to "
            f"{backend.partitions - 1} are drained once the events before the seal are applied."
        )

    def _record(self, backend, stored: int | None) -> None:
        count = backend.partitions
        if stored == count:
            self.stdout.write(f"The store's partition count is already {count}: nothing to do.")
            return
        if stored is not None:
            # Events recorded by the old count wait in the old partitions (some beyond the new
            # count, where no drain looks); drained first, none is reordered or left behind.
            waiting = backend.waiting_partitions(stored)
            if waiting:
                raise CommandError(
                    f"The store was sealed with {stored} partitions and partitions {waiting} "
                    "still hold events or dead letters: stop everything that records events, "
                    f"let the workers drain them with PARTITIONS={stored} (requeue or discard "
                    "the dead letters), then run this again. To raise the count without "
                    f"stopping, set PREVIOUS_PARTITIONS={stored} instead (docs/operations.md)."
                )
        backend.record_partitions(count, replace=True)
        self.stdout.write(
            f"Recorded {count} as the store's partition count"
            + (f" (it was {stored})." if stored is not None else ".")
        )
