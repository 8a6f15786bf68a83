//! Reading the times a user types: milliseconds since the epoch, or an ISO-8601 UTC
//! date-time (`2026-11-29T10:15`, seconds and a trailing `Z` optional), as the message
//! browser and the offset reset take them.

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Milliseconds since the epoch; None when it is neither form (or out of range).
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (year, month, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = match t.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if d.next().is_some()
        || t.next().is_some()
        || !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_milliseconds_and_iso_dates() {
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse(" 1700000000000 "), Some(1_700_000_000_000));
        assert_eq!(parse("1970-01-01T00:00"), Some(0));
        assert_eq!(parse("2026-11-29T10:15:30Z"), Some(1_795_947_330_000));
        assert_eq!(parse("2000-02-29 00:00"), Some(951_782_400_000));
        for bad in [
            "",
            "-5",
            "2026-02-29T00:00",
            "2026-13-01T00:00",
            "2026-11-29",
            "2026-11-29T24:00",
            "x",
            "2026-11-29T10:15:30:00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
