//! Which `__consumer_offsets` partition holds a group: Kafka's own function, so every
//! client and tool that computes a coordinator agrees with the broker.

/// Java's `String.hashCode` over the group id's UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// `Utils.abs(groupId.hashCode) % partitions`, where Kafka's `Utils.abs` maps
/// `Integer.MIN_VALUE` to 0 rather than overflowing.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_string_hash_code() {
        // Values from Java's "...".hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("console-consumer-12345"), 158_455_506);
        // Outside the BMP: two UTF-16 code units, as Java sees it.
        assert_eq!(java_string_hash("😀"), 1_772_899);
    }

    #[test]
    fn partitions_follow_kafkas_abs_and_modulo() {
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(
            partition_for("console-consumer-12345", 50),
            158_455_506 % 50
        );
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
