//! Everything fdlab prints as JSON: one pretty document.

use serde::Serialize;

/// `value` as one pretty JSON document.
pub fn pretty<T: Serialize>(value: &T) -> String {
    // Reports, rows and topologies are plain data: serializing cannot fail.
    serde_json::to_string_pretty(value).expect("plain data serializes")
}
