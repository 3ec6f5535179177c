//! The reply encoder.

use policy_core::Action;

/// Append `action=<action>\n\n` to `out`.
pub fn encode(action: &Action, out: &mut Vec<u8>) {
    out.extend_from_slice(b"action=");
    action.write_wire(out);
    out.extend_from_slice(b"\n\n");
}
