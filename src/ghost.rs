//! What a shard remembers of the keys it evicted, and the share of the
//! small FIFO that memory steers.
//!
//! A direct-mapped table of fingerprints, a quarter as large as the shard,
//! remembers keys evicted from the small FIFO and from main: each slot
//! holds one fingerprint for each queue. A key that comes back while
//! remembered tells which queue was short of room, as in ARC (Megiddo &
//! Modha, FAST '03):
//! - back from the small FIFO's ghost: it was evicted before it had a
//!   chance to be used again, so new entries need a longer look. The key
//!   goes straight to main, and the small FIFO's share grows.
//! - back from main's ghost: main evicted something still in use, so main
//!   needs the room. The share shrinks. The key goes back to main if the
//!   share is still above `READMIT_ABOVE_PERMILLE` (5%), and starts again
//!   in the small FIFO otherwise. A share that low means keys seldom come
//!   back soon after leaving the small FIFO, as in a loop longer than the
//!   cache, where sending main's returns to main would let the loop cycle
//!   through main and flush it: readmitted at every share, the LIRS `loop`
//!   and `scan` traces fell to 0% hits at every size below the loop's
//!   length. Above it, the key was worth keeping: on the Zipf stream of the
//!   compare bench's workload (b), readmitting raised the hit ratio from
//!   79.86% to 80.05–80.06%.
//!
//! A key back from the small FIFO's ghost is not let into main while main
//! churns: while keys come back from main's ghost at more than four for
//! every five from the small FIFO's (counts halved each time the shard
//! has taken as many inserts as it holds entries). Main is then letting go
//! of keys still in use about as fast as it takes new ones in, and sending
//! it more would only cycle keys through it. The key starts in the small
//! FIFO, whose share still grows for it: the small FIFO, not main, is
//! where such a workload's keys find room. The threshold sits above the
//! two for every three at which the share's steps balance (below): on the
//! Zipf stream of workload (b) it held back 14 of the 44,804 keys that
//! came back from the small FIFO's ghost, and the hit ratio did not move.
//! LIRS `zigzag` walks its keys forwards and backwards; keys near the turns
//! come back from both ghosts about equally often, and went to main and
//! pushed out what it held. Holding them back raised `zigzag` at 1,000
//! entries from 31.5% to 35.8% and at 500 from 15.5% to 17.0% (four
//! replays each through the library), with every recorded workload within
//! 0.15 points of where it was, and the hit-ratio bench's mean over its 45
//! rows from 53.35–53.53% to 53.60–53.76% (five runs each). Holding the
//! share still as well kept more of the gain on `zigzag` (37.6% at 1,000)
//! but cost `cache2k/orm-busy` 0.2 points at each of its sizes.
//!
//! For the reason the check holds those keys back, an entry used while in
//! the small FIFO is not promoted while main churns: it gets another lap in
//! the small FIFO, its use cleared (see `policy::step`). Over ten replays
//! through the library, alternated with the policy without it, the mean
//! over the 45 rows went from 53.52–53.65% to 53.63–53.79%, with `zigzag`
//! at 1,000 +2.3 points, `2_pools` at 100 +1.4, `cloud_physics/w106` at
//! 10,000 +0.75 and `cache2k/orm-busy` at 500 +0.27; no row but `lirs/cpp`
//! at 20 (−0.4) lost more than 0.2, and (b)'s stream stayed at
//! 80.05–80.06%. In five runs of the hit-ratio bench the mean was
//! 53.64–53.83%, against 53.60–53.76% before; the rows at 100 entries move
//! by up to 5 points between runs and hide most of the gain there, while
//! the recorded workloads' rows, which move by a few hundredths, kept it
//! (`cloud_physics/w106` at 10,000: 86.19–86.28%, against 85.46–85.48% in
//! three runs before).
//!
//! Both of a key's fingerprints share one slot, so the lookup every insert
//! makes reads one cache line, not one in each of two tables.
//!
//! The share grows by `GROW_PERMILLE` per key back from the small FIFO's
//! ghost and shrinks by `SHRINK_PERMILLE` per key back from main's,
//! between `MIN_PERMILLE` and `MAX_PERMILLE`. The steps are uneven
//! because with even steps the share settles where the two kinds of
//! return are as frequent: on the Zipf stream of the compare bench's
//! workload (b), about 40%, which leaves main too small for the hot set
//! (79.4% hits, against 79.9% with the share capped at 10%). With
//! a shrink half again the grow, it moves between 14% and 33% there, at
//! the capped share's hit ratio, and it still climbs where new keys need a
//! long look: on LIRS `zigzag` (keys come back at long, even distances) in
//! a single shard of 1,000 entries it reaches 88%, for 38.5% hits against
//! 35.2% with the cap. The share starts at the floor: until keys come back
//! from the small FIFO's ghost, nothing says that new entries need a
//! longer look. Nothing is allocated until the shard first evicts; then 4
//! bytes per four resident entries.
//!
//! A small cache remembers more than a quarter: the cache's shards keep
//! at least `CACHE_FLOOR` (128) slots between them, each no more than it
//! holds entries. A cache of 100 entries has one shard by default (see
//! `ENTRIES_PER_SHARD`), and its ghost remembers about as many keys as it
//! holds; eight shards of a dozen entries kept 16 slots each, as many
//! again. Moved to one shard with a quarter-size ghost, caches of 100 lost
//! on the LIRS traces whose keys come back at long distances (three
//! replays through the library each: `ps` 26.1% -> 18.7%, `multi3` 23.0%
//! -> 15.4%, `multi1` 40.4% -> 37.4%); with the floor they gained on
//! those (27.0%, 24.6%, 43.0%) as on the others, and the mean over the 45
//! rows went from 53.69–53.76% (eight shards) to 54.07–54.17%. A floor
//! of 128 slots in a shard of 20 entries was too much (`lirs/cpp` at 20:
//! 14.3% in one replay, against 23.4% with 32 slots), hence the cap at
//! the shard's entries.

use crate::slab::Queue;

/// Fingerprint slots per resident entry of the shard: one in `DIVISOR`.
const DIVISOR: usize = 4;

/// Fingerprint slots over all the cache's shards, whatever the quarter:
/// each of `n` shards keeps at least `CACHE_FLOOR / n` slots, but not
/// more than it holds entries, and never fewer than `MIN_SLOTS`.
const CACHE_FLOOR: usize = 128;
const MIN_SLOTS: usize = 16;

/// The small FIFO's share of a tenant queue's weight, in permille: its
/// bounds, where it starts, and how far one returning key moves it up
/// (back from the small FIFO's ghost) or down (back from main's).
const MIN_PERMILLE: u32 = 10;
const START_PERMILLE: u32 = MIN_PERMILLE;
const MAX_PERMILLE: u32 = 900;
const GROW_PERMILLE: u32 = 2;
const SHRINK_PERMILLE: u32 = 3;

/// Above this share of the small FIFO, a key back from main's ghost goes
/// straight back to main.
const READMIT_ABOVE_PERMILLE: u32 = 50;

/// Main churns while returns from its ghost exceed this fraction of the
/// returns from the small FIFO's: `CHURN_MAIN` for every `CHURN_SMALL`.
const CHURN_MAIN: u32 = 4;
const CHURN_SMALL: u32 = 5;

/// Recent returns from each ghost, halved each time the shard has taken
/// as many inserts as it holds entries, so that they follow the workload.
#[derive(Debug, Default)]
struct Returns {
    small: u32,
    main: u32,
    inserts: u32,
}

impl Returns {
    /// Counts one insert; halves the counts once `resident` inserts have
    /// gone by since they were last halved.
    #[inline]
    fn insert(&mut self, resident: usize) {
        self.inserts += 1;
        if self.inserts as usize >= resident.max(16) {
            self.inserts = 0;
            self.small /= 2;
            self.main /= 2;
        }
    }

    fn main_churns(&self) -> bool {
        u64::from(self.main) * u64::from(CHURN_SMALL)
            > u64::from(self.small) * u64::from(CHURN_MAIN)
    }
}

/// Fingerprints of recently evicted hashes in a direct-mapped table, one
/// for each queue per slot.
#[derive(Debug)]
struct Fingerprints {
    slots: Vec<[u16; 2]>,
    /// Slots wanted whatever the quarter, up to one per resident entry.
    floor: usize,
}

impl Fingerprints {
    fn new(floor: usize) -> Self {
        Self {
            slots: Vec::new(),
            floor,
        }
    }

    /// The high half of the hash (the low half picks the slot); never 0,
    /// which marks an empty place.
    fn fingerprint(hash: u32) -> u16 {
        (hash >> 16) as u16 | 1
    }

    /// Remembers a hash evicted from `from`, first growing the table to
    /// about a quarter of `resident` slots (or the floor, if more) if it is
    /// smaller.
    #[inline]
    fn remember(&mut self, from: Queue, hash: u32, resident: usize) {
        // The table's length is 0 or a power of two, so it is short of the
        // wanted power of two exactly when it is short of the wanted size.
        let wanted = (resident / DIVISOR)
            .max(self.floor.min(resident))
            .max(MIN_SLOTS);
        if self.slots.len() < wanted {
            // Growing rehomes every fingerprint; forgetting them is cheaper
            // and costs only a few misjudged returns.
            self.slots = vec![[0; 2]; wanted.next_power_of_two()];
        }
        let mask = self.slots.len() - 1;
        self.slots[hash as usize & mask][from as usize] = Self::fingerprint(hash);
    }

    /// Which queue `hash` is remembered as evicted from (the small FIFO
    /// first, if both); forgets it there.
    #[inline]
    fn take(&mut self, hash: u32) -> Option<Queue> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let pair = &mut self.slots[hash as usize & mask];
        let f = Self::fingerprint(hash);
        let from = if pair[Queue::Small as usize] == f {
            Queue::Small
        } else if pair[Queue::Main as usize] == f {
            Queue::Main
        } else {
            return None;
        };
        pair[from as usize] = 0;
        Some(from)
    }
}

/// A shard's memory of evicted keys and the small FIFO's current share.
#[derive(Debug)]
pub(crate) struct Ghost {
    evicted: Fingerprints,
    small_permille: u32,
    returns: Returns,
}

impl Ghost {
    /// The ghost of one of a cache's `shards` shards.
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            evicted: Fingerprints::new(CACHE_FLOOR / shards.max(1)),
            small_permille: START_PERMILLE,
            returns: Returns::default(),
        }
    }

    /// The small FIFO's share of a tenant queue's weight, in permille.
    pub(crate) fn small_permille(&self) -> u64 {
        u64::from(self.small_permille)
    }

    /// Remembers a key evicted from a small FIFO without being used.
    #[inline]
    pub(crate) fn evicted_from_small(&mut self, hash: u32, resident: usize) {
        self.evicted.remember(Queue::Small, hash, resident);
    }

    /// Whether main is letting go of keys still in use about as fast as it
    /// takes new ones in (see the module docs).
    #[inline]
    pub(crate) fn main_churns(&self) -> bool {
        self.returns.main_churns()
    }

    /// Remembers a key evicted from main.
    #[inline]
    pub(crate) fn evicted_from_main(&mut self, hash: u32, resident: usize) {
        self.evicted.remember(Queue::Main, hash, resident);
    }

    /// Called for a key about to be inserted into a shard of `resident`
    /// entries: adapts the small FIFO's share if the key was evicted
    /// recently, and says whether it goes straight to main.
    #[inline]
    pub(crate) fn admit_to_main(&mut self, hash: u32, resident: usize) -> bool {
        self.returns.insert(resident);
        match self.evicted.take(hash) {
            Some(Queue::Small) => {
                self.returns.small += 1;
                self.small_permille = (self.small_permille + GROW_PERMILLE).min(MAX_PERMILLE);
                !self.returns.main_churns()
            }
            Some(Queue::Main) => {
                self.returns.main += 1;
                self.small_permille = self
                    .small_permille
                    .saturating_sub(SHRINK_PERMILLE)
                    .max(MIN_PERMILLE);
                self.small_permille > READMIT_ABOVE_PERMILLE
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ghost of one of eight shards: its floor, 16 slots, is below
    /// every quarter these tests ask for.
    fn ghost() -> Ghost {
        Ghost::new(8)
    }

    /// Each key comes back from the small FIFO's ghost (and goes to main).
    fn back_from_small(g: &mut Ghost, keys: impl IntoIterator<Item = u32>) {
        for key in keys {
            assert!(back(g, Some(Queue::Small), [key], 1 << 16));
        }
    }

    /// Each key comes back from `from`'s ghost in a shard of `resident`
    /// entries (`None`: was never evicted); whether the last went to main.
    fn back(
        g: &mut Ghost,
        from: Option<Queue>,
        keys: impl IntoIterator<Item = u32>,
        resident: usize,
    ) -> bool {
        let mut to_main = false;
        for key in keys {
            match from {
                Some(Queue::Small) => g.evicted_from_small(key, resident),
                Some(Queue::Main) => g.evicted_from_main(key, resident),
                None => {}
            }
            to_main = g.admit_to_main(key, resident);
        }
        to_main
    }

    /// Each key comes back from main's ghost.
    fn back_from_main(g: &mut Ghost, keys: impl IntoIterator<Item = u32>) {
        back(g, Some(Queue::Main), keys, 1 << 16);
    }

    /// Moves the share onto `target` with returns from either ghost;
    /// returns the first key not used yet.
    fn share_to(g: &mut Ghost, target: u64) -> u32 {
        let mut key = 0;
        while g.small_permille() != target {
            assert!(key < 1000, "the share never landed on {target}");
            if g.small_permille() < target {
                back_from_small(g, [key]);
            } else {
                back_from_main(g, [key]);
            }
            key += 1;
        }
        key
    }

    #[test]
    fn fingerprints_remember_each_queue_until_taken() {
        let (a, b) = (0x0001_002a, 0x0002_002a); // same slot, other fingerprints
        let mut f = Fingerprints::new(MIN_SLOTS);
        assert_eq!(f.take(a), None, "an empty table remembers nothing");
        f.remember(Queue::Main, a, 100);
        assert_eq!(f.slots.len(), 32, "a quarter of 100, rounded up");
        f.remember(Queue::Small, b, 100);
        assert_eq!(
            f.take(a),
            Some(Queue::Main),
            "b shares the slot, not the place"
        );
        assert_eq!(f.take(a), None, "taken once");
        f.remember(Queue::Main, b, 100);
        assert_eq!(f.take(b), Some(Queue::Small), "the small FIFO's first");
        assert_eq!(f.take(b), Some(Queue::Main));
        assert_eq!(f.take(b), None);
    }

    #[test]
    fn fingerprints_survive_until_the_shard_outgrows_the_table() {
        let (a, b) = (0x0001_0001, 0x0001_0002);
        let mut f = Fingerprints::new(MIN_SLOTS);
        f.remember(Queue::Small, a, 128);
        assert_eq!(f.slots.len(), 32, "exactly a quarter of 128");
        f.remember(Queue::Small, b, 128);
        f.remember(Queue::Main, b, 100);
        assert_eq!(f.slots.len(), 32, "a smaller shard keeps the table");
        assert_eq!(f.take(a), Some(Queue::Small), "kept at the same size");
        f.remember(Queue::Main, a, 129 * DIVISOR);
        assert_eq!(f.slots.len(), 256, "grown to the next power of two");
        assert_eq!(f.take(b), None, "growing forgets");
        assert_eq!(f.take(a), Some(Queue::Main));
    }

    #[test]
    fn a_small_shard_remembers_as_many_keys_as_it_holds_up_to_its_floor() {
        let mut f = Fingerprints::new(CACHE_FLOOR);
        f.remember(Queue::Small, 1, 20);
        assert_eq!(f.slots.len(), 32, "20, rounded up; not the floor of 128");
        f.remember(Queue::Small, 1, 100);
        assert_eq!(f.slots.len(), 128, "100, rounded up; not a quarter");
        f.remember(Queue::Small, 1, 1000);
        assert_eq!(f.slots.len(), 256, "a quarter of 1000 is above the floor");
    }

    #[test]
    fn the_cache_floor_is_spread_over_the_shards() {
        let floor = |shards| Ghost::new(shards).evicted.floor;
        assert_eq!(floor(1), CACHE_FLOOR);
        assert_eq!(floor(8), CACHE_FLOOR / 8);
        let mut g = Ghost::new(64);
        g.evicted_from_small(1, 40);
        assert_eq!(g.evicted.slots.len(), MIN_SLOTS, "never below the minimum");
    }

    #[test]
    fn a_key_back_from_small_goes_to_main_and_grows_the_small_share() {
        let mut g = ghost();
        g.evicted_from_small(7, 1000);
        assert!(g.admit_to_main(7, 1000));
        assert_eq!(
            g.small_permille(),
            u64::from(START_PERMILLE + GROW_PERMILLE)
        );
        assert!(!g.admit_to_main(7, 1000), "forgotten once back");
        assert!(!g.admit_to_main(8, 1000), "never evicted");
        assert_eq!(
            g.small_permille(),
            u64::from(START_PERMILLE + GROW_PERMILLE)
        );
    }

    #[test]
    fn a_key_back_from_main_starts_in_small_and_shrinks_the_small_share() {
        let mut g = ghost();
        back_from_small(&mut g, 0..5);
        let grown = START_PERMILLE + 5 * GROW_PERMILLE;
        assert_eq!(g.small_permille(), u64::from(grown));
        g.evicted_from_main(7, 1000);
        assert!(!g.admit_to_main(7, 1000));
        assert_eq!(g.small_permille(), u64::from(grown - SHRINK_PERMILLE));
    }

    #[test]
    fn a_key_back_from_main_goes_back_to_main_while_the_small_share_is_above_the_readmit_share() {
        let mut g = ghost();
        let key = share_to(
            &mut g,
            u64::from(READMIT_ABOVE_PERMILLE + SHRINK_PERMILLE + 1),
        );
        g.evicted_from_main(key, 1 << 16);
        assert!(
            g.admit_to_main(key, 1 << 16),
            "still above the readmit share"
        );
    }

    #[test]
    fn a_return_from_main_that_brings_the_share_down_to_the_readmit_share_starts_in_small() {
        let mut g = ghost();
        let key = share_to(&mut g, u64::from(READMIT_ABOVE_PERMILLE + SHRINK_PERMILLE));
        g.evicted_from_main(key, 1 << 16);
        assert!(
            !g.admit_to_main(key, 1 << 16),
            "not above the readmit share"
        );
        assert_eq!(g.small_permille(), u64::from(READMIT_ABOVE_PERMILLE));
    }

    #[test]
    fn as_many_returns_from_each_ghost_shrink_the_small_share() {
        let mut g = ghost();
        back_from_small(&mut g, 0..50);
        let grown = g.small_permille();
        for key in 100..120 {
            back_from_small(&mut g, [key]);
            back_from_main(&mut g, [key + 1000]);
        }
        assert!(
            g.small_permille() < grown,
            "a return from main's ghost outweighs one from the small FIFO's"
        );
        let pairs = 20;
        assert_eq!(
            g.small_permille(),
            grown - pairs * u64::from(SHRINK_PERMILLE - GROW_PERMILLE)
        );
    }

    #[test]
    fn a_key_back_from_small_starts_in_small_while_main_churns_and_the_share_still_grows() {
        let mut g = ghost();
        back_from_small(&mut g, 0..4);
        back_from_main(&mut g, 100..104);
        g.evicted_from_small(7, 1 << 16);
        assert!(
            g.admit_to_main(7, 1 << 16),
            "four back from main against five from small: not above four in five"
        );
        back_from_main(&mut g, [104]);
        let share = g.small_permille();
        g.evicted_from_small(8, 1 << 16);
        assert!(
            !g.admit_to_main(8, 1 << 16),
            "five back from main against six from small: main churns"
        );
        assert_eq!(g.small_permille(), share + u64::from(GROW_PERMILLE));
    }

    #[test]
    fn halving_the_counts_keeps_their_balance() {
        let mut g = ghost();
        let resident = 16;
        for key in 0..8 {
            assert!(back(&mut g, Some(Queue::Small), [key], resident));
        }
        back(&mut g, Some(Queue::Main), 100..106, resident);
        // Two fresh inserts make sixteen: eight and six become four and three.
        back(&mut g, None, 200..202, resident);
        assert!(
            back(&mut g, Some(Queue::Small), [300], resident),
            "three from main, five from small"
        );
    }

    #[test]
    fn a_single_return_from_main_is_forgotten_at_the_halving() {
        let mut g = ghost();
        let resident = 16;
        back(&mut g, Some(Queue::Small), [0], resident);
        back(&mut g, Some(Queue::Main), [1], resident);
        back(&mut g, None, 100..114, resident);
        assert!(
            back(&mut g, Some(Queue::Small), [200], resident),
            "none from main, one from small"
        );
    }

    #[test]
    fn churn_is_forgotten_after_a_few_shard_sizes_of_inserts() {
        let mut g = ghost();
        let resident = 16;
        back(&mut g, Some(Queue::Main), 0..8, resident);
        assert!(
            !back(&mut g, Some(Queue::Small), [100], resident),
            "eight back from main, one from small"
        );
        // Inserts of keys never evicted; each shard-size of them halves both
        // counts, down to nothing.
        assert!(!back(
            &mut g,
            None,
            1_000..1_000 + 4 * resident as u32,
            resident
        ));
        assert!(
            back(&mut g, Some(Queue::Small), [101], resident),
            "the churn was forgotten"
        );
    }

    #[test]
    fn the_small_share_stays_within_its_bounds() {
        let mut g = ghost();
        back_from_small(&mut g, 0..1000);
        assert_eq!(g.small_permille(), u64::from(MAX_PERMILLE));
        back_from_main(&mut g, 0..1000);
        assert_eq!(g.small_permille(), u64::from(MIN_PERMILLE));
    }
}
