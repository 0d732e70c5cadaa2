//! Units shared by the configuration file and the command line.

/// Parses a byte count with an optional unit: `1048576`, `500KB`, `64MiB`, `1.5GiB` (case-insensitive; KB, MB,
/// GB, TB are powers of 1000, KiB, MiB, GiB, TiB powers of 1024).
///
/// # Errors
/// A message naming the value when it is not a byte size or does not fit in 64 bits.
pub fn parse_byte_size(value: &str) -> Result<u64, String> {
    let parsed: bytesize::ByteSize = value
        .trim()
        .parse()
        .map_err(|e| format!("{value:?} is not a byte size such as 500MB or 4GiB: {e}"))?;
    // bytesize saturates on overflow; no real size is 16 EiB.
    match parsed.as_u64() {
        u64::MAX => Err(format!("{value:?} is too large")),
        n => Ok(n),
    }
}
