//! Small sampling helpers on top of `rand` 0.8 (no `rand_distr` needed) and the per-stream
//! random generators that make every customer's history independent of every other's.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(crate) type DemoRng = ChaCha8Rng;

/// One generator per (stream, slot): the seed picks the key, the stream is the customer (or the
/// rep roster), the slot the month. Histories therefore do not depend on the order in which
/// customers or months are generated, nor on how many random numbers a neighbour consumed.
pub(crate) fn rng_for(key: &[u8; 32], stream: u64, slot: u64) -> DemoRng {
    let mut rng = ChaCha8Rng::from_seed(*key);
    rng.set_stream(stream);
    rng.set_word_pos(u128::from(slot) << 40);
    rng
}

/// Expands a 64-bit seed into a ChaCha key with SplitMix64.
pub(crate) fn key_from_seed(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut key = [0u8; 32];
    for chunk in key.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    key
}

/// A standard normal sample (Box–Muller).
pub(crate) fn normal(rng: &mut DemoRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal multiplier with median 1.
pub(crate) fn lognormal(rng: &mut DemoRng, sigma: f64) -> f64 {
    (sigma * normal(rng)).exp()
}

/// A Poisson count (Knuth's method; the rates here are small).
pub(crate) fn poisson(rng: &mut DemoRng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let limit = (-lambda).exp();
    let mut product: f64 = rng.gen();
    let mut count = 0;
    while product > limit && count < 100 {
        product *= rng.gen::<f64>();
        count += 1;
    }
    count
}

/// Index into `weights`, chosen with probability proportional to its weight.
pub(crate) fn pick_weighted(rng: &mut DemoRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// A random element of a non-empty slice.
pub(crate) fn pick<'a, T>(rng: &mut DemoRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

pub(crate) const DAY: i64 = 86_400;
pub(crate) const HOUR: i64 = 3_600;

/// Monday = 0 … Sunday = 6 for a Unix timestamp (1970-01-01 was a Thursday).
pub(crate) fn weekday(t: i64) -> i64 {
    (t.div_euclid(DAY) + 3).rem_euclid(7)
}

/// A random instant in `[lo, hi)` during office hours on a weekday (UTC hours given by
/// `first_utc_hour`, nine hours long), falling back to any instant in the window when the
/// window has no such time.
pub(crate) fn office_time(rng: &mut DemoRng, lo: i64, hi: i64, first_utc_hour: i64) -> i64 {
    debug_assert!(lo < hi);
    let any = rng.gen_range(lo..hi);
    let mut day = any.div_euclid(DAY) * DAY;
    match weekday(day) {
        5 => day -= DAY,
        6 => day += DAY,
        _ => {}
    }
    let t = day + first_utc_hour * HOUR + rng.gen_range(0..9 * HOUR);
    if (lo..hi).contains(&t) {
        t
    } else {
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_repeatable() {
        let key = key_from_seed(7);
        let a: u64 = rng_for(&key, 1, 2).gen();
        let b: u64 = rng_for(&key, 1, 2).gen();
        let c: u64 = rng_for(&key, 2, 2).gen();
        let d: u64 = rng_for(&key, 1, 3).gen();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn office_time_stays_in_the_window() {
        let mut rng = rng_for(&key_from_seed(1), 0, 0);
        for _ in 0..10_000 {
            let lo = rng.gen_range(0..1_000_000_000);
            let hi = lo + rng.gen_range(1..40 * DAY);
            let t = office_time(&mut rng, lo, hi, 1);
            assert!((lo..hi).contains(&t));
        }
    }

    #[test]
    fn weekday_of_the_epoch_is_thursday() {
        assert_eq!(weekday(0), 3);
        assert_eq!(weekday(4 * DAY), 0);
    }
}
