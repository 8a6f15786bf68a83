//! Storage sizes as Kubernetes writes them (`10Gi`, `500M`, `1e9`, `1.5Gi`), compared
//! exactly: an expansion or a refused decrease must not hinge on float rounding.

/// The size in thousandths of a byte (so `100m` and fractional sizes compare exactly);
/// None for text that is not a quantity.
pub fn milli_bytes(text: &str) -> Option<u128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let (multiplier, divisor): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exponent => {
            let power: u32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            (10u128.checked_pow(power)?, 1)
        }
    };
    digits
        .checked_mul(multiplier)?
        .checked_mul(1000)?
        .checked_div(scale)?
        .checked_div(divisor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_fractions() {
        assert_eq!(milli_bytes("1Gi"), milli_bytes("1073741824"));
        assert_eq!(milli_bytes("1.5Gi"), milli_bytes("1536Mi"));
        assert_eq!(milli_bytes("1e3"), milli_bytes("1k"));
        assert_eq!(milli_bytes("500m"), Some(500));
        assert!(milli_bytes("2G") < milli_bytes("2Gi"));
        assert_eq!(milli_bytes("lots"), None);
        assert_eq!(milli_bytes("1Xi"), None);
        assert_eq!(milli_bytes(""), None);
    }
}
