"""Log compaction for ``cleanup.policy=compact`` (and ``compact,delete``): Kafka's ``LogCleaner``.

One cleaning of a partition log, as in Kafka:

1. **Range.** The *dirty section* is ``[first_dirty, first_uncleanable)``. ``first_dirty`` comes
   from the caller's ``cleaner-offset-checkpoint`` (reset to the log start when missing, below the
   log start or past the log end). ``first_uncleanable`` is the smallest of: the active segment's
   base offset (never touched), the base of the segment containing ``last_stable_offset`` (the
   caller passes min(high watermark, first unstable offset): data that may still be truncated must
   not make older data disappear), and the base of the first dirty segment whose largest timestamp
   is newer than ``now - min.compaction.lag.ms``.
2. **Offset map.** key -> last offset of that key over the dirty section, built in offset order
   from non-control, non-transactional batches. It is bounded (``dedupe_buffer_size`` bytes,
   Kafka's ``log.cleaner.dedupe.buffer.size``, counting ``len(key) + 100`` per entry); when full,
   the cleaned range stops at a batch boundary and the next cleaning carries on from there.
   ``end`` (the end of the cleaned range, checkpointed by the caller as the next first dirty
   offset) is where the map stopped, else ``first_uncleanable``.
3. **Rewrite** every segment with base offset < ``end``, from the first one, in groups of
   consecutive segments whose total size fits ``segment.bytes`` (and whose offsets fit one
   segment); each group becomes one new segment with the group's first base offset. Per record:

   - offset >= ``end`` (tail of the last segment when the map filled): kept, batch copied as is;
   - data of aborted transactions (from the aborted-transaction index over the range, followed
     as a read_committed consumer does: from a transaction's first offset to its ABORT marker)
     is removed, as in Kafka; the range ends below the last stable offset, so every
     transaction with data in it is decided;
   - transaction markers, as Kafka's: a marker whose transaction has no record left in the
     log (the rewrite scans from the first segment, so it sees all of it: an aborted
     transaction once its data is removed, a transaction that wrote nothing here) gets a
     delete horizon (``now + delete.retention.ms``, as a tombstone's) at the first cleaning
     that sees it so, and is removed by the first cleaning after the horizon -- unless it is
     its producer's last batch (producer state) or ends its group, then it stays whole. A new
     segment's aborted-transaction index (``.txnindex``) is the union of its group's, less the
     entries of the ABORT markers removed (``commit_clean``). Other transactional batches:
     kept whole (committed transactional records are neither removed nor used to supersede
     older records: safe, less compact than Kafka), and a marker whose transaction has
     records left stays;
   - keyless records: kept (Kafka rejects them at produce time on compacted topics and its
     cleaner drops them; we never lose data silently);
   - a keyed record is removed if the map holds a later offset for its key;
   - a tombstone (null value) that is the latest for its key is kept until its delete horizon
     passes (KIP-534): the first cleaning that keeps it rewrites its batch with the
     delete-horizon attribute and ``base_timestamp = now + delete.retention.ms``; a later
     cleaning with ``now >= horizon`` removes it.

   Offsets are preserved: a rewritten batch keeps its base offset and ``last_offset_delta`` (so
   its last offset and last sequence survive, as Kafka does for producer state), its producer id,
   epoch and base sequence, partition leader epoch, timestamp type, and its compression codec
   (retained records are recompressed with the batch's own codec, default level). A batch whose
   records all stay (and needs no new horizon) is copied byte for byte, never recompressed.
   A batch left with no records is dropped, except (a) the last batch of each group, kept as an
   empty batch (no records, same offset range) so the new segment ends at exactly the offset the
   old group ended at -- ``PartitionLog.open`` finishes an interrupted swap by deleting the old
   segments in ``[swap base, swap end)``, so the swap must cover the whole group -- and (b) the
   last batch of a producer id within the rewritten range (Kafka keeps it for producer state; we
   cannot see later batches in the uncleanable range, so this may keep a few more than Kafka).
   A group that changes nothing (a single segment, every batch copied) is not swapped.

Phases and threads:

- ``log_to_clean(log, ...)`` -- on the log's owner (event loop), cheap: computes the range and
  duplicates the fds of the segments to read (``os.dup``: later deletion or retention of those
  segments cannot pull the file from under the cleaner).
- ``prepare_clean(to_clean, ...)`` -- the heavy part, safe in a worker thread: it reads only its
  own fds of immutable (non-active) segments and writes ``<base>.log.cleaned`` / ``.index.cleaned``
  / ``.timeindex.cleaned`` files (fsynced). It never touches the ``PartitionLog``.
- ``commit_clean(log, plan)`` -- on the owner, short: checks that the segments it replaces are
  still the same (same objects, same sizes, not the active segment; a prefix of whole groups
  deleted meanwhile by retention is tolerated and skipped), else deletes the plan's files and
  raises ``CleanAbortedError``. Then swaps (below). Cost: a few renames and 2 + groups dir fsyncs.
- ``clean_log`` runs all three. One cleaning per log directory at a time (enforced).

Crash safety (Kafka's ``.cleaned``/``.swap`` protocol, which ``PartitionLog.open`` recovers:
``.cleaned`` and index ``.swap`` files are deleted, a ``.log.swap`` replaces the segments in its
offset range). For each group in offset order: rename its index files ``.cleaned -> .swap``, then
its log ``.cleaned -> .swap`` (the group's commit point), fsync the directory. Then delete every
old segment, fsync the directory; then rename every ``.swap`` to its final name, fsync the
directory. A crash before a group's ``.log.swap`` exists leaves that group old (its files are
leftovers); from then on recovery completes its swap, deleting whatever old files remain in its
range (the fsync before deleting the old segments makes sure a new ``.log`` can never coexist
with a resurrected old segment). The ``.cleaned`` files are fsynced before any rename.

So after a crash each group is old or new, and the new groups are a prefix. That mixed state
loses nothing: a record is removed from a group only because of a later record of its key in the
same or a later group (still present: a later group is old, or new and keeps it), or because it
is an expired tombstone -- whose older records were removed by the cleaning that set its horizon.
The caller's checkpoint is only written after ``commit_clean`` returns, so the next cleaning
redoes the same range.

``Throttler`` bounds the cleaner's I/O (read and written bytes), Kafka's
``log.cleaner.io.max.bytes.per.second``; one instance can be shared by several cleaner threads.
"""

from storage.cleaner.plan import CleanAbortedError, CleanPlan, CleanStats, LogToClean, log_to_clean
from storage.cleaner.rewrite import (
    DEFAULT_DEDUPE_BUFFER_SIZE,
    DEFAULT_IO_BUFFER_SIZE,
    prepare_clean,
)
from storage.cleaner.selection import (
    cleanable_offsets,
    dirty_ratio,
    earliest_delete_horizon,
    needs_cleaning,
)
from storage.cleaner.swap import CleanResult, clean_log, commit_clean
from storage.cleaner.throttler import Throttler

__all__ = [
    "DEFAULT_DEDUPE_BUFFER_SIZE",
    "DEFAULT_IO_BUFFER_SIZE",
    "CleanAbortedError",
    "CleanPlan",
    "CleanResult",
    "CleanStats",
    "LogToClean",
    "Throttler",
    "clean_log",
    "cleanable_offsets",
    "commit_clean",
    "dirty_ratio",
    "earliest_delete_horizon",
    "log_to_clean",
    "needs_cleaning",
    "prepare_clean",
]
