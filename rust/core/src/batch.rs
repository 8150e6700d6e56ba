//! Batch history and `market_data_batch` encoding.
//!
//! A symbol keeps the ticks its batch receivers have not been sent yet (from the smallest
//! next seq of any batch member, or auto member while the symbol is high-frequency). A batch
//! frame is encoded once per `(symbol, start, end)` within one core call and shared.

use std::collections::HashMap;

use crate::frame::{ascii, write_int, Frame};

/// Contiguous ticks `base ..` of one symbol: `(ts, price units, size units)`.
#[derive(Debug, Default)]
pub(crate) struct History {
    base: u64,
    ticks: Vec<(u64, u64, u64)>,
}

impl History {
    /// Append tick `seq`; a gap (nobody needed the ticks in between) restarts the history.
    pub fn push(&mut self, seq: u64, ts: u64, price: u64, size: u64) {
        if self.ticks.is_empty() || self.base + self.ticks.len() as u64 != seq {
            self.ticks.clear();
            self.base = seq;
        }
        self.ticks.push((ts, price, size));
    }

    /// Ticks `start ..= end`, if all are held.
    pub fn range(&self, start: u64, end: u64) -> Option<&[(u64, u64, u64)]> {
        let lo = usize::try_from(start.checked_sub(self.base)?).ok()?;
        let hi = usize::try_from(end.checked_sub(self.base)?).ok()?;
        if lo > hi {
            return None;
        }
        self.ticks.get(lo..=hi)
    }

    /// Forget ticks before `seq` (nobody needs them any more).
    pub fn trim(&mut self, seq: u64) {
        if seq > self.base {
            let n = ((seq - self.base) as usize).min(self.ticks.len());
            self.ticks.drain(..n);
            self.base = seq;
        }
    }

    pub fn clear(&mut self) {
        self.ticks.clear();
    }
}

/// Frames encoded during the current core call, by `(symbol, start, end)`.
pub(crate) struct BatchCache<F> {
    last: Option<((usize, u64, u64), F)>,
    map: HashMap<(usize, u64, u64), F>,
}

impl<F> Default for BatchCache<F> {
    fn default() -> Self {
        BatchCache {
            last: None,
            map: HashMap::new(),
        }
    }
}

impl<F: Frame> BatchCache<F> {
    /// Drop the frames of the finished call.
    pub fn clear(&mut self) {
        self.last = None;
        self.map.clear();
    }

    /// The frame for ticks `start ..= end` of a symbol, encoded at most once per call. None
    /// only if the history lacks the range (an internal invariant; nothing is queued then).
    #[allow(clippy::too_many_arguments)]
    pub fn get(
        &mut self,
        buf: &mut Vec<u8>,
        sym: usize,
        name: &str,
        pd: u32,
        sd: u32,
        history: &History,
        start: u64,
        end: u64,
    ) -> Option<F> {
        let key = (sym, start, end);
        if let Some((k, f)) = &self.last {
            if *k == key {
                return Some(f.clone());
            }
        }
        let frame = match self.map.get(&key) {
            Some(f) => f.clone(),
            None => {
                encode_batch(buf, name, pd, sd, start, history.range(start, end)?);
                let f = F::from_ascii(ascii(buf));
                self.map.insert(key, f.clone());
                f
            }
        };
        self.last = Some((key, frame.clone()));
        Some(frame)
    }
}

/// Encode a `market_data_batch` frame for `ticks` (seq `start` onwards) into `buf`.
pub(crate) fn encode_batch(
    buf: &mut Vec<u8>,
    name: &str,
    pd: u32,
    sd: u32,
    start: u64,
    ticks: &[(u64, u64, u64)],
) {
    buf.clear();
    buf.extend_from_slice(b"{\"type\":\"market_data_batch\",\"symbol\":\"");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\",\"seq\":");
    write_int(buf, start);
    buf.extend_from_slice(b",\"count\":");
    write_int(buf, ticks.len());
    buf.extend_from_slice(b",\"price_decimals\":");
    write_int(buf, pd);
    buf.extend_from_slice(b",\"size_decimals\":");
    write_int(buf, sd);
    // ts never decreases within a symbol (ingest rejects it), so ts deltas are >= 0; price
    // deltas may be negative.
    buf.extend_from_slice(b",\"ts\":");
    write_deltas(buf, ticks.iter().map(|t| t.0));
    buf.extend_from_slice(b",\"price\":");
    write_deltas(buf, ticks.iter().map(|t| t.1));
    buf.extend_from_slice(b",\"size\":[");
    for &(_, _, size) in ticks {
        write_int(buf, size);
        buf.push(b',');
    }
    close_array(buf);
    buf.push(b'}');
}

/// A JSON array of `values`: the first absolute, each later one the difference from the previous.
fn write_deltas(buf: &mut Vec<u8>, values: impl Iterator<Item = u64>) {
    buf.push(b'[');
    let mut prev: Option<u64> = None;
    for v in values {
        let delta = prev.map_or(v as i128, |p| v as i128 - p as i128);
        write_int(buf, delta);
        buf.push(b',');
        prev = Some(v);
    }
    close_array(buf);
}

/// Replace the trailing comma of a non-empty array (or close an empty one).
fn close_array(buf: &mut Vec<u8>) {
    if buf.last() == Some(&b',') {
        buf.pop();
    }
    buf.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn batch_frame_matches_spec_example() {
        let mut buf = Vec::new();
        let ticks = [
            (1731283200123, 4312537, 1500000),
            (1731283200128, 4312535, 250000000),
            (1731283200128, 4312545, 1000),
        ];
        encode_batch(&mut buf, "BTC/USD", 2, 8, 1042, &ticks);
        assert_eq!(
            ascii(&buf),
            r#"{"type":"market_data_batch","symbol":"BTC/USD","seq":1042,"count":3,"price_decimals":2,"size_decimals":8,"ts":[1731283200123,5,0],"price":[4312537,-2,10],"size":[1500000,250000000,1000]}"#
        );
    }

    #[test]
    fn history_is_contiguous_and_trims() {
        let mut h = History::default();
        h.push(5, 1, 1, 1);
        h.push(6, 2, 2, 2);
        assert_eq!(h.range(5, 6).map(<[_]>::len), Some(2));
        assert!(h.range(4, 6).is_none() && h.range(6, 7).is_none());
        h.trim(6);
        assert!(h.range(5, 6).is_none());
        assert_eq!(h.range(6, 6), Some(&[(2, 2, 2)][..]));
        h.push(9, 3, 3, 3); // gap: restart
        assert_eq!(h.range(9, 9), Some(&[(3, 3, 3)][..]));
        assert!(h.range(6, 6).is_none());
    }

    #[test]
    fn cache_shares_one_frame_per_range() {
        let mut h = History::default();
        h.push(1, 10, 100, 1);
        h.push(2, 11, 101, 1);
        let mut c: BatchCache<Arc<str>> = BatchCache::default();
        let mut buf = Vec::new();
        let a = c.get(&mut buf, 0, "X", 0, 0, &h, 1, 2).unwrap();
        let b = c.get(&mut buf, 0, "X", 0, 0, &h, 2, 2).unwrap();
        let a2 = c.get(&mut buf, 0, "X", 0, 0, &h, 1, 2).unwrap();
        assert!(Arc::ptr_eq(&a, &a2) && !Arc::ptr_eq(&a, &b));
        assert!(c.get(&mut buf, 0, "X", 0, 0, &h, 0, 2).is_none());
    }

    /// A `market_data_batch` frame back to `(symbol, pd, sd, seq, ticks)`: the decoder of
    /// PROTOCOL.md's rules (first `ts`/`price` absolute, then differences; `size` absolute),
    /// reading the keys in the encoder's order and checking `count`.
    fn decode_batch(frame: &str) -> (String, u32, u32, u64, Vec<(u64, u64, u64)>) {
        fn after<'a>(text: &'a str, key: &str) -> &'a str {
            let tag = format!("\"{key}\":");
            let at = text
                .find(&tag)
                .unwrap_or_else(|| panic!("no {key} in {text}"));
            &text[at + tag.len()..]
        }
        fn int(text: &str, key: &str) -> i128 {
            let rest = after(text, key);
            let end = rest.find([',', '}']).unwrap();
            rest[..end].parse().unwrap()
        }
        fn array(text: &str, key: &str) -> Vec<i128> {
            let rest = after(text, key).strip_prefix('[').unwrap();
            let body = &rest[..rest.find(']').unwrap()];
            if body.is_empty() {
                return Vec::new();
            }
            body.split(',').map(|v| v.parse().unwrap()).collect()
        }
        fn undelta(deltas: &[i128]) -> Vec<u64> {
            let mut acc = 0i128;
            deltas
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    acc = if i == 0 { *d } else { acc + d };
                    u64::try_from(acc).unwrap()
                })
                .collect()
        }
        assert!(
            frame.starts_with(r#"{"type":"market_data_batch","symbol":""#) && frame.ends_with('}')
        );
        let name_rest = after(frame, "symbol").strip_prefix('"').unwrap();
        let name = name_rest[..name_rest.find('"').unwrap()].to_string();
        let (ts, price) = (
            undelta(&array(frame, "ts")),
            undelta(&array(frame, "price")),
        );
        let size: Vec<u64> = array(frame, "size")
            .iter()
            .map(|v| u64::try_from(*v).unwrap())
            .collect();
        let count = usize::try_from(int(frame, "count")).unwrap();
        assert!(
            ts.len() == count && price.len() == count && size.len() == count,
            "{frame}"
        );
        let ticks = (0..count).map(|i| (ts[i], price[i], size[i])).collect();
        let pd = u32::try_from(int(frame, "price_decimals")).unwrap();
        let sd = u32::try_from(int(frame, "size_decimals")).unwrap();
        (
            name,
            pd,
            sd,
            u64::try_from(int(frame, "seq")).unwrap(),
            ticks,
        )
    }

    #[test]
    fn decoder_reads_the_spec_example() {
        let frame = r#"{"type":"market_data_batch","symbol":"BTC/USD","seq":1042,"count":3,"price_decimals":2,"size_decimals":8,"ts":[1731283200123,5,0],"price":[4312537,-2,10],"size":[1500000,250000000,1000]}"#;
        let ticks = vec![
            (1731283200123, 4312537, 1500000),
            (1731283200128, 4312535, 250000000),
            (1731283200128, 4312545, 1000),
        ];
        assert_eq!(decode_batch(frame), ("BTC/USD".into(), 2, 8, 1042, ticks));
    }

    mod properties {
        use super::*;
        use crate::{MAX_DECIMALS, MAX_UNITS};
        use proptest::prelude::*;

        /// Cases per property: `PROPTEST_CASES` if set (a deeper run), else `default`.
        fn cases(default: u32) -> u32 {
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        }

        /// Ticks as ingest admits them: `ts` never decreasing (0 ..= i64::MAX), price and size
        /// units 0 ..= MAX_UNITS.
        fn ticks() -> impl Strategy<Value = Vec<(u64, u64, u64)>> {
            let ts0 = prop_oneof![0u64..=1000, 0u64..=i64::MAX as u64];
            let step = prop_oneof![Just(0u64), 0u64..=10, 0u64..=u64::from(u32::MAX)];
            let units = prop_oneof![0u64..=10, 0u64..=MAX_UNITS, Just(MAX_UNITS)];
            (
                ts0,
                prop::collection::vec((step, units.clone(), units), 1..64),
            )
                .prop_map(|(ts0, raw)| {
                    let mut ts = ts0;
                    raw.into_iter()
                        .map(|(step, price, size)| {
                            ts = ts.saturating_add(step).min(i64::MAX as u64);
                            (ts, price, size)
                        })
                        .collect()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

            #[test]
            fn batch_encoder_round_trips(
                name in "[A-Za-z0-9._:/-]{1,32}",
                pd in 0..=MAX_DECIMALS,
                sd in 0..=MAX_DECIMALS,
                seq in 1u64..=MAX_UNITS,
                ticks in ticks(),
            ) {
                let mut buf = Vec::new();
                encode_batch(&mut buf, &name, pd, sd, seq, &ticks);
                let frame = ascii(&buf);
                prop_assert!(frame.is_ascii() && !frame.contains(char::is_whitespace));
                prop_assert_eq!(decode_batch(frame), (name, pd, sd, seq, ticks));
            }
        }
    }
}
