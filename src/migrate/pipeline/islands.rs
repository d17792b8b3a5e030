//! Islands: batches acknowledged past a range's position, saved with its checkpoint
//! ([`Island`]), so that a resume after a crash skips them instead of writing them
//! again. The matcher recognises them in the resumed stream; the book keeps this run's.

use std::collections::HashMap;

use super::Window;
use crate::mapping::item::WriteItem;
use crate::migrate::checkpoint::{Island, MAX_ISLANDS};

/// A document held while the resume checks that it belongs to an island.
pub(super) struct HeldDoc {
    pub(super) name: String,
    pub(super) collection: String,
    pub(super) pattern: String,
    pub(super) item: WriteItem,
    pub(super) seq: u64,
}

/// Recognises, in a resumed stream, the islands a crashed run left (see
/// [`crate::migrate::checkpoint::Island`]): the documents of an island's collection are held from
/// its `first` on and skipped once its `last` arrives within `docs` of them; past that
/// many without `last`, or at the end of the stream, they are released and written.
#[derive(Default)]
pub(super) struct IslandMatcher {
    waiting: HashMap<(String, String), Island>,
    active: HashMap<String, (Island, Vec<HeldDoc>)>,
}

/// What the matcher decided for one document.
pub(super) enum Matched {
    /// Not part of an island: write it (with any documents released before it).
    Write(Vec<HeldDoc>),
    /// Held until its island is confirmed or released.
    Held,
    /// An island is confirmed: these documents landed before and are skipped.
    Skip(Island, Vec<u64>),
}

impl IslandMatcher {
    pub(super) fn new(islands: &[Island]) -> Self {
        Self {
            waiting: islands
                .iter()
                .map(|i| ((i.collection.clone(), i.first.clone()), i.clone()))
                .collect(),
            active: HashMap::new(),
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.active.is_empty()
    }

    pub(super) fn offer(&mut self, doc: HeldDoc) -> Matched {
        let key = doc.collection.clone();
        let name = doc.name.clone();
        if let Some((island, held)) = self.active.get_mut(&key) {
            held.push(doc);
            let n = held.len() as u64;
            let confirmed = n == island.docs && name == island.last;
            if !confirmed && n < island.docs {
                return Matched::Held;
            }
            let (island, held) = self.active.remove(&key).expect("active");
            return if confirmed {
                Matched::Skip(island, held.into_iter().map(|d| d.seq).collect())
            } else {
                Matched::Write(held)
            };
        }
        match self.waiting.remove(&(key.clone(), name.clone())) {
            Some(island) if island.docs == 1 && island.last == name => {
                Matched::Skip(island, vec![doc.seq])
            }
            Some(island) if island.docs > 1 => {
                self.active.insert(key, (island, vec![doc]));
                Matched::Held
            }
            _ => Matched::Write(vec![doc]),
        }
    }

    /// Everything still held, in read order: the stream ended before its island did.
    pub(super) fn release_all(&mut self) -> Vec<HeldDoc> {
        let mut held: Vec<HeldDoc> = self.active.drain().flat_map(|(_, (_, h))| h).collect();
        held.sort_by_key(|d| d.seq);
        held
    }
}

/// The islands of a range (see [`Island`]): those a crashed run left, and those this run
/// leaves past its cursor; saved with every checkpoint.
#[derive(Default)]
pub(super) struct IslandBook {
    /// With the sequence numbers of the island's documents once this run has them, so the
    /// island shrinks as the cursor passes over it and goes when it is covered (a resume
    /// starts after the cursor: an island starting behind it would never be recognised).
    pub(super) kept: Vec<(Island, Option<Vec<u64>>)>,
}

impl IslandBook {
    pub(super) fn confirm(&mut self, island: &Island, seqs: Vec<u64>) {
        if let Some(entry) = self.kept.iter_mut().find(|(i, _)| i == island) {
            entry.1 = Some(seqs);
        }
    }

    pub(super) fn add(&mut self, island: Island, seqs: Vec<u64>) {
        self.kept.push((island, Some(seqs)));
        if self.kept.len() > MAX_ISLANDS {
            // Forgetting an island only means writing its documents again after a crash.
            self.kept.remove(0);
        }
    }

    /// Trims the islands to what the cursor does not cover.
    pub(super) fn prune(&mut self, window: &Window) {
        self.kept.retain_mut(|(island, seqs)| {
            let Some(seqs) = seqs else { return true };
            seqs.retain(|s| *s >= window.base());
            match seqs.first().and_then(|s| window.position(*s)) {
                Some(first) => {
                    island.first = first.name().to_string();
                    island.docs = seqs.len() as u64;
                    true
                }
                None => false,
            }
        });
    }

    pub(super) fn islands(&self) -> Vec<Island> {
        self.kept.iter().map(|(i, _)| i.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::pipeline::{tally, Outcome};
    use crate::source::Position;
    use mongodb::bson::{rawdoc, Bson};

    fn held(collection: &str, name: &str, seq: u64) -> HeldDoc {
        HeldDoc {
            name: name.to_string(),
            collection: collection.to_string(),
            pattern: collection.to_string(),
            item: WriteItem {
                source_path: name.to_string(),
                id: Bson::String(name.to_string()),
                doc: rawdoc! {},
                literal: false,
                kind: Default::default(),
            },
            seq,
        }
    }

    fn island(collection: &str, first: &str, last: &str, docs: u64) -> Island {
        Island {
            collection: collection.into(),
            first: first.into(),
            last: last.into(),
            docs,
        }
    }

    #[test]
    fn an_island_that_comes_back_exactly_is_skipped_and_others_pass() {
        let mut m = IslandMatcher::new(&[island("a", "a1", "a3", 3)]);
        assert!(matches!(m.offer(held("a", "a0", 0)), Matched::Write(d) if d.len() == 1));
        assert!(matches!(m.offer(held("a", "a1", 1)), Matched::Held));
        // Other collections flow past while the island is held.
        assert!(matches!(m.offer(held("b", "b1", 2)), Matched::Write(_)));
        assert!(matches!(m.offer(held("a", "a2", 3)), Matched::Held));
        match m.offer(held("a", "a3", 4)) {
            Matched::Skip(i, seqs) => {
                assert_eq!(i.first, "a1");
                assert_eq!(seqs, vec![1, 3, 4]);
            }
            _ => panic!("the island is confirmed"),
        }
        assert!(m.is_idle());
    }

    #[test]
    fn an_island_that_does_not_come_back_exactly_is_written() {
        // `a3` was deleted since: the held documents are released, never skipped.
        let mut m = IslandMatcher::new(&[island("a", "a1", "a3", 2)]);
        assert!(matches!(m.offer(held("a", "a1", 0)), Matched::Held));
        match m.offer(held("a", "a4", 1)) {
            Matched::Write(d) => {
                assert_eq!(d.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![0, 1])
            }
            _ => panic!("released"),
        }
        // The stream ends inside an island: what is held is written, in read order.
        let mut m = IslandMatcher::new(&[island("a", "a1", "a9", 5), island("b", "b1", "b9", 5)]);
        assert!(matches!(m.offer(held("b", "b1", 0)), Matched::Held));
        assert!(matches!(m.offer(held("a", "a1", 1)), Matched::Held));
        let rest: Vec<u64> = m.release_all().iter().map(|d| d.seq).collect();
        assert_eq!(rest, vec![0, 1]);
    }

    #[test]
    fn islands_shrink_as_the_cursor_passes_and_go_when_covered() {
        let mut t = Window::default();
        for n in ["x1", "y1", "x2", "x3"] {
            t.register(Position::after(n));
        }
        let mut book = IslandBook::default();
        book.add(island("x", "x1", "x3", 3), vec![0, 2, 3]);
        t.ack(0, Outcome::Counted);
        t.ack(1, Outcome::Written);
        let (cursor, outcomes) = t.advance().unwrap();
        assert_eq!((cursor.name(), tally(&outcomes).written), ("y1", 1));
        book.prune(&t);
        assert_eq!(book.islands(), vec![island("x", "x2", "x3", 2)]);
        t.ack(2, Outcome::Counted);
        t.ack(3, Outcome::Counted);
        let (_, outcomes) = t.advance().unwrap();
        assert_eq!(
            tally(&outcomes).done(),
            0,
            "island documents are counted once, when saved"
        );
        book.prune(&t);
        assert!(book.islands().is_empty());
    }
}
