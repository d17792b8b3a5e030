//! Ordered acknowledgements, shared by migrate and verify.
//!
//! Both read a source in order, send its documents on in groups per target collection
//! (write batches, comparison chunks), and get the groups acknowledged in any order
//! (several in flight, several collections). A resumable position may only move past a
//! document once it and every document before it are acknowledged:
//!
//! * [`AckWindow`] numbers documents in read order, records each acknowledgement, and
//!   pops the acknowledged prefix: its last position is what a checkpoint may store.
//! * [`Groups`] holds the open group of each collection, cut at a count and a byte
//!   bound, with all open groups together bounded in bytes (past it the largest is sent
//!   early: many collections interleave in `__name__` order).
//! * [`relieve`] keeps the window short: past `max_lag` documents behind the position,
//!   the open group holding the oldest unacknowledged document is sent at once (so a
//!   collection that fills slowly does not hold the position back), else the caller
//!   waits for acknowledgements. The window's length is what a crash makes a resume
//!   redo, and what the window costs in memory.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Documents from read to acknowledgement, in read order. `P` is a document's
/// position, `O` what became of it.
#[derive(Debug)]
pub struct AckWindow<P, O> {
    /// Sequence number of `window[0]`.
    base: u64,
    window: VecDeque<(P, Option<O>)>,
}

impl<P, O> Default for AckWindow<P, O> {
    fn default() -> Self {
        Self {
            base: 0,
            window: VecDeque::new(),
        }
    }
}

impl<P, O> AckWindow<P, O> {
    /// Registers the next document read; returns its sequence number.
    pub fn register(&mut self, position: P) -> u64 {
        self.window.push_back((position, None));
        self.base + self.window.len() as u64 - 1
    }

    /// Records what became of document `seq`. A document the window already moved past
    /// is ignored.
    pub fn ack(&mut self, seq: u64, outcome: O) {
        if let Some(slot) = seq
            .checked_sub(self.base)
            .and_then(|i| self.window.get_mut(i as usize))
        {
            slot.1 = Some(outcome);
        }
    }

    /// Pops the acknowledged prefix: the position of its last document and the outcomes
    /// of all of them, in read order. `None` when the oldest document is unacknowledged.
    pub fn advance(&mut self) -> Option<(P, Vec<O>)> {
        let mut last = None;
        let mut outcomes = Vec::new();
        while self.window.front().is_some_and(|(_, o)| o.is_some()) {
            let (position, outcome) = self.window.pop_front().expect("checked");
            outcomes.push(outcome.expect("checked"));
            last = Some(position);
            self.base += 1;
        }
        last.map(|p| (p, outcomes))
    }

    /// The sequence number of the oldest document not yet popped.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The position of a document not yet popped.
    pub fn position(&self, seq: u64) -> Option<&P> {
        seq.checked_sub(self.base)
            .and_then(|i| self.window.get(i as usize))
            .map(|(p, _)| p)
    }

    /// Documents read but not yet popped.
    pub fn lag(&self) -> usize {
        self.window.len()
    }

    /// The oldest document not yet acknowledged.
    pub fn oldest_pending(&self) -> Option<u64> {
        self.window
            .iter()
            .position(|(_, o)| o.is_none())
            .map(|i| self.base + i as u64)
    }
}

/// Where groups are cut.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// Items per group: a group holding this many is cut when the next item arrives.
    pub max_items: usize,
    /// Bytes per group: an item that would take a group past this starts the next one.
    pub max_group_bytes: usize,
    /// Bytes of all open groups together: past it the largest is cut early.
    pub max_bytes: usize,
}

/// Items of one key (collection) sent on together, with their sequence numbers.
#[derive(Debug)]
pub struct Group<K, T> {
    pub key: K,
    pub items: Vec<T>,
    pub seqs: Vec<u64>,
    pub bytes: usize,
}

/// The open group of each key, bounded as [`GroupLimits`] says.
#[derive(Debug)]
pub struct Groups<K, T> {
    limits: GroupLimits,
    open: HashMap<K, Group<K, T>>,
    bytes: usize,
}

impl<K: Eq + Hash + Clone, T> Groups<K, T> {
    pub fn new(limits: GroupLimits) -> Self {
        Self {
            limits,
            open: HashMap::new(),
            bytes: 0,
        }
    }

    /// Adds item `seq` of `bytes` to `key`'s group. Returns the groups to send now, in
    /// order: the group the item did not fit into (full by count or by bytes), and the
    /// largest group when all of them together hold too many bytes.
    pub fn push(&mut self, key: K, item: T, seq: u64, bytes: usize) -> Vec<Group<K, T>> {
        let mut ready = Vec::new();
        // A full group is cut when the next item arrives, without it: the item just read
        // must not travel (and land past the position) before the caller's lag check.
        let fits = self.open.get(&key).is_none_or(|g| {
            g.items.is_empty()
                || (g.items.len() < self.limits.max_items
                    && g.bytes + bytes <= self.limits.max_group_bytes)
        });
        if !fits {
            ready.extend(self.remove(&key));
        }
        let group = self.open.entry(key.clone()).or_insert_with(|| Group {
            key: key.clone(),
            items: Vec::new(),
            seqs: Vec::new(),
            bytes: 0,
        });
        group.items.push(item);
        group.seqs.push(seq);
        group.bytes += bytes;
        self.bytes += bytes;
        if self.bytes > self.limits.max_bytes {
            let largest = self
                .open
                .iter()
                .max_by_key(|(_, g)| g.bytes)
                .map(|(k, _)| k.clone());
            ready.extend(largest.and_then(|k| self.remove(&k)));
        }
        ready
    }

    /// Removes the open group whose first item is `seq` (the oldest unacknowledged
    /// document, when it is still waiting here, is always first in its group).
    pub fn take_starting_at(&mut self, seq: u64) -> Option<Group<K, T>> {
        let key = self
            .open
            .iter()
            .find(|(_, g)| g.seqs.first() == Some(&seq))
            .map(|(k, _)| k.clone())?;
        self.remove(&key)
    }

    /// Every open group, oldest first, so the position advances as the tail drains.
    pub fn drain(&mut self) -> Vec<Group<K, T>> {
        let mut rest: Vec<Group<K, T>> = self.open.drain().map(|(_, g)| g).collect();
        self.bytes = 0;
        rest.sort_by_key(|g| g.seqs.first().copied());
        rest.retain(|g| !g.items.is_empty());
        rest
    }

    /// Bytes held in open groups.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &K) -> Option<Group<K, T>> {
        let g = self.open.remove(key)?;
        self.bytes -= g.bytes;
        Some(g)
    }
}

/// What keeps a window within its bound.
#[derive(Debug)]
pub enum Relief<K, T> {
    /// At most `max_lag` documents behind the position: carry on.
    Within,
    /// Send this group now: it holds the oldest unacknowledged document.
    Send(Group<K, T>),
    /// The oldest unacknowledged document is in flight: wait for acknowledgements
    /// (if nothing is in flight, whatever holds it is the caller's to release).
    Wait,
}

/// Decides how to bring `window` back within `max_lag` documents (see the module doc).
pub fn relieve<P, O, K: Eq + Hash + Clone, T>(
    window: &AckWindow<P, O>,
    groups: &mut Groups<K, T>,
    max_lag: usize,
) -> Relief<K, T> {
    if window.lag() <= max_lag {
        return Relief::Within;
    }
    match window
        .oldest_pending()
        .and_then(|seq| groups.take_starting_at(seq))
    {
        Some(g) => Relief::Send(g),
        None => Relief::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: GroupLimits = GroupLimits {
        max_items: 3,
        max_group_bytes: 100,
        max_bytes: 150,
    };

    #[test]
    fn the_position_moves_only_past_an_acknowledged_prefix() {
        let mut w: AckWindow<&str, u8> = AckWindow::default();
        let (a, b, c) = (w.register("a"), w.register("b"), w.register("c"));
        w.ack(c, 3);
        assert!(w.advance().is_none(), "a and b are not acknowledged");
        w.ack(a, 1);
        assert_eq!(w.advance(), Some(("a", vec![1])));
        assert_eq!(w.oldest_pending(), Some(b));
        w.ack(b, 2);
        assert_eq!(w.advance(), Some(("c", vec![2, 3])));
        assert_eq!((w.lag(), w.base()), (0, 3));
        // A late acknowledgement of something already passed changes nothing.
        w.ack(a, 9);
        assert!(w.advance().is_none());
    }

    #[test]
    fn groups_are_cut_by_count_by_bytes_and_the_largest_goes_when_all_are_too_big() {
        let mut g: Groups<&str, u64> = Groups::new(LIMITS);
        assert!(g.push("x", 0, 0, 10).is_empty());
        assert!(g.push("x", 1, 1, 10).is_empty());
        assert!(
            g.push("x", 2, 2, 10).is_empty(),
            "full, but kept until the next item"
        );
        let full = g.push("x", 7, 7, 10);
        assert_eq!(full.len(), 1);
        assert_eq!(
            full[0].seqs,
            vec![0, 1, 2],
            "cut at max_items, without the new item"
        );
        assert!(g.push("y", 3, 3, 90).is_empty());
        let cut = g.push("y", 4, 4, 20);
        assert_eq!(
            cut[0].seqs,
            vec![3],
            "the item did not fit: the group before it goes"
        );
        assert!(g.push("z", 5, 5, 60).is_empty());
        // x (10) + y (20) + z (60) + w (80): 170 > 150, so the largest (w) goes early.
        let over = g.push("w", 6, 6, 80);
        assert_eq!(over.len(), 1);
        assert_eq!((over[0].key, over[0].bytes), ("w", 80));
        assert_eq!(g.bytes(), 90);
        let rest = g.drain();
        assert_eq!(
            rest.iter().map(|g| g.seqs.clone()).collect::<Vec<_>>(),
            vec![vec![4], vec![5], vec![7]],
            "oldest first"
        );
        assert_eq!(g.bytes(), 0);
    }

    #[test]
    fn relief_sends_the_group_holding_the_oldest_pending_document_then_waits() {
        let mut w: AckWindow<u64, ()> = AckWindow::default();
        let mut g: Groups<&str, u64> = Groups::new(GroupLimits {
            max_items: 100,
            ..LIMITS
        });
        for (key, seq) in [("slow", 0), ("fast", 1), ("fast", 2)] {
            assert_eq!(w.register(seq), seq);
            g.push(key, seq, seq, 1);
        }
        assert!(matches!(relieve(&w, &mut g, 3), Relief::Within));
        match relieve(&w, &mut g, 2) {
            Relief::Send(group) => assert_eq!(group.key, "slow"),
            other => panic!("{other:?}"),
        }
        // Sent, not yet acknowledged: nothing more to send for the oldest.
        assert!(matches!(relieve(&w, &mut g, 2), Relief::Wait));
        w.ack(0, ());
        w.advance();
        assert!(matches!(relieve(&w, &mut g, 2), Relief::Within));
    }
}
