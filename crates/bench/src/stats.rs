//! Medians and the figures' formatting.

use std::time::Duration;

/// The median (the mean of the two middle values for an even count); `NaN` for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The median of durations, in milliseconds.
pub fn median_ms(values: &[Duration]) -> f64 {
    median(&values.iter().map(ms).collect::<Vec<_>>())
}

pub fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `12 345` (thin grouping for throughput figures).
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Milliseconds with a sensible number of decimals.
pub fn millis(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0} ms")
    } else if x.abs() >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

/// A signed difference in milliseconds.
pub fn delta_ms(x: f64) -> String {
    if x.is_finite() && x >= 0.0 {
        format!("+{}", millis(x))
    } else {
        millis(x)
    }
}

pub fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "n/a".into()
    }
}

/// Bytes as MiB.
pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn formatting() {
        assert_eq!(count(1234567.4), "1 234 567");
        assert_eq!(count(999.0), "999");
        assert_eq!(millis(0.1234), "0.12 ms");
        assert_eq!(delta_ms(0.5), "+0.50 ms");
        assert_eq!(ratio(0.812), "0.81×");
    }
}

/// A small seeded generator (xorshift64*), so that every run of an item asks the same things.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        // Any state but zero.
        Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next() % (hi - lo) }
    }

    /// An index below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.between(0, n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

#[cfg(test)]
mod dice_tests {
    use super::Dice;

    #[test]
    fn dice_are_deterministic_and_in_range() {
        let (mut a, mut b) = (Dice::new(7), Dice::new(7));
        for _ in 0..1000 {
            let (x, y) = (a.below(13), b.below(13));
            assert_eq!(x, y);
            assert!(x < 13);
            let (x, y) = (a.between(5, 9), b.between(5, 9));
            assert_eq!(x, y);
            assert!((5..9).contains(&x));
        }
        assert_eq!(a.between(3, 3), 3);
        assert_eq!(a.pick::<u8>(&[]), None);
    }
}
