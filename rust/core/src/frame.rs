//! Frame handles and the hand-written text encoding of decimals and `market_data` frames.
//!
//! Prices are never formatted with a float formatter: the text comes from the integer units
//! (`format_units`), so both cores produce the same bytes by construction.

use std::sync::Arc;

/// A shared, immutable encoded frame. Cloning must be cheap (a reference count): one frame is
/// encoded once and a clone is queued to every subscriber that receives it.
pub trait Frame: Clone {
    /// Wrap freshly encoded ASCII text.
    fn from_ascii(text: &str) -> Self;
    /// Length in characters (= bytes: frames are ASCII); counted against `max_queue_bytes`.
    fn len(&self) -> usize;
    /// Frames are never empty; provided for clippy's `len_without_is_empty`.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Frame for Arc<str> {
    fn from_ascii(text: &str) -> Self {
        Arc::from(text)
    }
    fn len(&self) -> usize {
        str::len(self)
    }
}

const POW10_U64: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Append the frame text of `units * 10**-decimals` (`decimals` <= 19): integer part, a dot,
/// the fractional digits without trailing zeros, at least one digit.
pub fn write_units(out: &mut Vec<u8>, units: u64, decimals: u32) {
    let mut ibuf = itoa::Buffer::new();
    if decimals == 0 {
        out.extend_from_slice(ibuf.format(units).as_bytes());
        out.extend_from_slice(b".0");
        return;
    }
    let p = POW10_U64[decimals as usize];
    let (int, mut frac) = (units / p, units % p);
    out.extend_from_slice(ibuf.format(int).as_bytes());
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = decimals as usize;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let text = ibuf.format(frac).as_bytes();
    out.extend(std::iter::repeat_n(b'0', digits - text.len()));
    out.extend_from_slice(text);
}

/// `format_units` of the spec for non-negative units.
pub fn format_units(units: u64, decimals: u32) -> String {
    let mut out = Vec::with_capacity(24);
    write_units(&mut out, units, decimals.min(19));
    // write_units only emits ASCII digits and '.'.
    String::from_utf8(out).unwrap_or_default()
}

/// `format_units` extended to negative units (a leading `-` and the magnitude's text).
pub fn format_units_signed(units: i64, decimals: u32) -> String {
    if units < 0 {
        let mut s = String::from("-");
        s.push_str(&format_units(units.unsigned_abs(), decimals));
        s
    } else {
        format_units(units as u64, decimals)
    }
}

pub(crate) fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Encode one `market_data` frame into `out` (cleared first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_market_data(
    out: &mut Vec<u8>,
    symbol: &str,
    seq: u64,
    ts: u64,
    price_units: u64,
    price_decimals: u32,
    size_units: u64,
    size_decimals: u32,
) {
    out.clear();
    out.extend_from_slice(b"{\"type\":\"market_data\",\"symbol\":\"");
    out.extend_from_slice(symbol.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    write_int(out, seq);
    out.extend_from_slice(b",\"ts\":");
    write_int(out, ts);
    out.extend_from_slice(b",\"price\":");
    write_units(out, price_units, price_decimals);
    out.extend_from_slice(b",\"size\":");
    write_units(out, size_units, size_decimals);
    out.push(b'}');
}

/// View an encoder buffer as text. Every encoder writes ASCII only (symbol names are
/// validated to `[A-Za-z0-9._:/-]`), so this never fails; an empty string is the fallback.
pub(crate) fn ascii(buf: &[u8]) -> &str {
    std::str::from_utf8(buf).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_units_matches_spec_examples() {
        assert_eq!(format_units(4312537, 2), "43125.37");
        assert_eq!(format_units(4312500, 2), "43125.0");
        assert_eq!(format_units(15, 3), "0.015");
        assert_eq!(format_units(7, 0), "7.0");
        assert_eq!(format_units(0, 8), "0.0");
        assert_eq!(format_units(100, 2), "1.0");
        assert_eq!(format_units(101, 2), "1.01");
        assert_eq!(format_units(1, 12), "0.000000000001");
        assert_eq!(format_units(crate::MAX_UNITS, 12), "9007.199254740991");
        assert_eq!(format_units(crate::MAX_UNITS, 0), "9007199254740991.0");
        assert_eq!(format_units_signed(-15, 3), "-0.015");
        assert_eq!(format_units_signed(-2, 0), "-2.0");
    }

    #[test]
    fn market_data_frame_is_byte_exact() {
        let mut buf = Vec::new();
        encode_market_data(
            &mut buf,
            "BTC/USD",
            1042,
            1731283200123,
            4312537,
            2,
            1500000,
            8,
        );
        assert_eq!(
            ascii(&buf),
            r#"{"type":"market_data","symbol":"BTC/USD","seq":1042,"ts":1731283200123,"price":43125.37,"size":0.015}"#
        );
    }
}
