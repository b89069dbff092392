//! Makes sure a partition's records are delivered from exactly where the reader was started.
//!
//! A Kafka broker answers a fetch from offset `o` with the record batch that *contains* `o`;
//! the client drops the batch's records before `o`. tansu 0.6.0's in-memory engine (the CI
//! broker) serves the first batch *starting* at or after `o` instead, so a reader started in the
//! middle of a multi-record batch silently loses the rest of that batch — and a projector
//! starting a partition at its checkpoint + 1 would move its checkpoint over events it never
//! saw (or, when the start lies in the partition's last batch, wait for it forever). So the
//! first record of every started partition is checked: if it lies beyond the start, or none
//! comes for [`STALL`], the partition is sought back (1, 2, 4, … records before the start) until
//! a record before the start arrives, and the records before the start are dropped here. A gap
//! that a read from before the start runs across is real (offsets a transactional producer or
//! compaction left out, or records removed by retention) and is delivered with a warning. On a
//! broker that serves fetches right, this costs nothing, or one record read again for a
//! partition that has nothing beyond its start.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a started partition may deliver nothing before it is read from before its start:
/// the broker may have skipped a start that lies in the partition's last batch.
/// Longer than a fetch of an idle partition takes (`fetch.wait.max.ms`, 500 ms by default).
pub(crate) const STALL: Duration = Duration::from_secs(1);

/// What the reader does with one record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    /// Before the start: already delivered, or read only to find where the start's batch begins.
    Drop,
    /// Beyond the start with nothing before it: seek the partition back to this offset.
    SeekTo(i64),
}

#[derive(Debug)]
struct Start {
    offset: i64,
    probe: Option<Probe>,
    /// When the partition was last sought or last delivered a record before its start.
    moved: Instant,
}

/// A read from `from` (before the start) in progress.
#[derive(Debug)]
struct Probe {
    from: i64,
    /// A record in `from..start` arrived: the read has reached the start from before it.
    reached: bool,
}

impl Start {
    /// When the partition counts as stalled, unless it delivers something first; never once its
    /// beginning was tried (it may be empty, or slow: its records are still checked).
    fn stall_at(&self) -> Option<Instant> {
        match &self.probe {
            Some(probe) if probe.from == 0 => None,
            _ => Some(self.moved + STALL),
        }
    }

    /// Where to read from next to find the start's batch, further back each time; `None` once
    /// the partition's beginning was tried.
    fn back_off(&mut self, now: Instant) -> Option<i64> {
        let back = match &self.probe {
            Some(probe) if probe.from == 0 => return None,
            Some(probe) => 2 * (self.offset - probe.from),
            None => 1,
        };
        let from = (self.offset - back).max(0);
        self.probe = Some(Probe {
            from,
            reached: false,
        });
        self.moved = now;
        Some(from)
    }
}

/// The started partitions whose first record is still to be checked, by partition.
#[derive(Debug, Default)]
pub(crate) struct Starts {
    pending: HashMap<i32, Start>,
}

impl Starts {
    /// The partition was (re)started at `offset`. The beginning needs no check.
    pub(crate) fn started(&mut self, partition: i32, offset: i64, now: Instant) {
        if offset <= 0 {
            self.forget(partition);
            return;
        }
        self.pending.insert(
            partition,
            Start {
                offset,
                probe: None,
                moved: now,
            },
        );
    }

    /// The partition was revoked.
    pub(crate) fn forget(&mut self, partition: i32) {
        self.pending.remove(&partition);
    }

    pub(crate) fn check(&mut self, partition: i32, offset: i64, now: Instant) -> Verdict {
        let Some(start) = self.pending.get_mut(&partition) else {
            return Verdict::Deliver;
        };
        let wanted = start.offset;
        if offset < wanted {
            if let Some(probe) = &mut start.probe {
                probe.reached |= offset >= probe.from;
            }
            start.moved = now;
            return Verdict::Drop;
        }
        if offset > wanted {
            if start.probe.as_ref().is_some_and(|p| p.reached) {
                tracing::warn!(
                    partition,
                    from = wanted,
                    to = offset - 1,
                    "these offsets are not in the log (left out by a transactional producer \
                     or compaction, or removed by retention)"
                );
            } else if let Some(from) = start.back_off(now) {
                tracing::info!(
                    partition,
                    start = wanted,
                    first = offset,
                    seek = from,
                    "the broker served this partition from beyond its start; reading it again \
                     from before"
                );
                return Verdict::SeekTo(from);
            } else {
                tracing::warn!(
                    partition,
                    from = wanted,
                    to = offset - 1,
                    "the log holds nothing before this partition's first record"
                );
            }
        }
        self.pending.remove(&partition);
        Verdict::Deliver
    }

    /// The seeks to make for partitions that delivered nothing for [`STALL`]. One that was
    /// read up to just before its start and has nothing more simply ends there.
    pub(crate) fn stalled(&mut self, now: Instant) -> Vec<(i32, i64)> {
        let mut seeks = Vec::new();
        self.pending.retain(|&partition, start| {
            if start.stall_at().is_none_or(|at| now < at) {
                return true;
            }
            if start.probe.as_ref().is_some_and(|p| p.reached) {
                return false;
            }
            if let Some(from) = start.back_off(now) {
                tracing::debug!(
                    partition,
                    start = start.offset,
                    seek = from,
                    "nothing came from this partition's start; reading it again from before"
                );
                seeks.push((partition, from));
            }
            true
        });
        seeks
    }

    /// When [`Starts::stalled`] has something to do next, if ever.
    pub(crate) fn next_stall(&self) -> Option<Instant> {
        self.pending.values().filter_map(Start::stall_at).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{Starts, Verdict, STALL};

    #[test]
    fn a_partition_starting_where_asked_is_delivered_as_it_comes() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 5, now);
        assert_eq!(starts.check(0, 5, now), Verdict::Deliver);
        assert_eq!(starts.check(0, 9, now), Verdict::Deliver);
        assert_eq!(starts.check(1, 3, now), Verdict::Deliver);
        assert_eq!(starts.next_stall(), None);
    }

    #[test]
    fn a_skipped_start_is_read_again_from_further_and_further_back() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 10, now);
        assert_eq!(starts.check(0, 16, now), Verdict::SeekTo(9));
        assert_eq!(starts.check(0, 16, now), Verdict::SeekTo(8));
        assert_eq!(starts.check(0, 16, now), Verdict::SeekTo(6));
        assert_eq!(starts.check(0, 16, now), Verdict::SeekTo(2));
        // The batch holding 2..=15 arrives: the records before the start are dropped.
        for offset in 2..10 {
            assert_eq!(starts.check(0, offset, now), Verdict::Drop);
        }
        for offset in 10..20 {
            assert_eq!(starts.check(0, offset, now), Verdict::Deliver);
        }
    }

    #[test]
    fn a_gap_read_across_from_before_the_start_is_delivered() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 10, now);
        assert_eq!(starts.check(0, 12, now), Verdict::SeekTo(9));
        assert_eq!(starts.check(0, 9, now), Verdict::Drop);
        assert_eq!(starts.check(0, 12, now), Verdict::Deliver);
    }

    #[test]
    fn nothing_before_the_first_record_is_a_gap_at_the_beginning() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 2, now);
        assert_eq!(starts.check(0, 7, now), Verdict::SeekTo(1));
        assert_eq!(starts.check(0, 7, now), Verdict::SeekTo(0));
        assert_eq!(starts.check(0, 7, now), Verdict::Deliver);
    }

    #[test]
    fn a_start_in_the_last_batch_is_found_when_nothing_arrives() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 6, now);
        starts.started(1, 3, now);
        assert_eq!(starts.next_stall(), Some(now + STALL));
        assert_eq!(starts.stalled(now), vec![]);
        let later = now + STALL;
        let mut seeks = starts.stalled(later);
        seeks.sort();
        assert_eq!(seeks, vec![(0, 5), (1, 2)]);
        // Partition 1 delivers its batch; partition 0 still nothing.
        assert_eq!(starts.check(1, 0, later), Verdict::Drop);
        assert_eq!(starts.check(1, 3, later), Verdict::Deliver);
        let later = later + STALL;
        assert_eq!(starts.stalled(later), vec![(0, 4)]);
        assert_eq!(starts.check(0, 4, later), Verdict::Drop);
        assert_eq!(starts.check(0, 6, later), Verdict::Deliver);
        assert_eq!(starts.next_stall(), None);
    }

    #[test]
    fn a_partition_read_up_to_its_start_and_no_further_ends_there() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 6, now);
        assert_eq!(starts.stalled(now + STALL), vec![(0, 5)]);
        assert_eq!(starts.check(0, 5, now + STALL), Verdict::Drop);
        assert_eq!(starts.stalled(now + STALL * 2), vec![]);
        assert_eq!(starts.next_stall(), None);
        // Whatever comes later is new.
        assert_eq!(starts.check(0, 6, now + STALL * 3), Verdict::Deliver);
    }

    #[test]
    fn a_partition_read_from_its_beginning_waits_without_stalling_again() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 1, now);
        assert_eq!(starts.stalled(now + STALL), vec![(0, 0)]);
        assert_eq!(starts.stalled(now + STALL * 9), vec![]);
        assert_eq!(starts.next_stall(), None);
        // A slow answer is still checked.
        assert_eq!(starts.check(0, 0, now + STALL * 9), Verdict::Drop);
        assert_eq!(starts.check(0, 1, now + STALL * 9), Verdict::Deliver);
    }

    #[test]
    fn a_restart_replaces_the_check_and_a_revocation_ends_it() {
        let now = Instant::now();
        let mut starts = Starts::default();
        starts.started(0, 10, now);
        assert_eq!(starts.check(0, 15, now), Verdict::SeekTo(9));
        starts.started(0, 20, now);
        assert_eq!(starts.check(0, 15, now), Verdict::Drop);
        assert_eq!(starts.check(0, 20, now), Verdict::Deliver);
        starts.started(1, 4, now);
        starts.forget(1);
        assert_eq!(starts.check(1, 9, now), Verdict::Deliver);
        starts.started(2, 0, now);
        assert_eq!(starts.next_stall(), None);
    }
}
