//! Whether a trace is recorded.
//!
//! A caller that says (a sampled `traceparent`, or `Sampled=1` in `X-Amzn-Trace-Id`) is
//! followed, so one trace is whole across services; otherwise the ratio decides, on the trace
//! id itself (as OpenTelemetry's `TraceIdRatioBased`): every proxy of a fleet that sees the
//! same trace decides the same way.

use opentelemetry::trace::TraceId;

/// Whether a trace with no decision from its caller is recorded at `ratio` (0 to 1).
pub fn by_ratio(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    // The low 63 bits against ratio × 2^63, as the OpenTelemetry SDKs compare them.
    let value = u64::from_be_bytes(low) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    value < bound
}

/// The decision: the caller's when it made one, else the ratio's.
pub fn decide(trace_id: TraceId, caller: Option<bool>, ratio: f64) -> bool {
    caller.unwrap_or_else(|| by_ratio(trace_id, ratio))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_keeps_about_its_share_of_traces() {
        let kept = (0..20_000)
            .filter(|_| by_ratio(crate::new_trace_id(), 0.1))
            .count();
        assert!(
            (1_600..2_400).contains(&kept),
            "kept {kept} of 20,000 at 0.1"
        );
    }

    #[test]
    fn zero_and_one_are_exact_and_the_caller_wins() {
        let id = crate::new_trace_id();
        assert!(!by_ratio(id, 0.0));
        assert!(by_ratio(id, 1.0));
        assert!(decide(id, Some(true), 0.0));
        assert!(!decide(id, Some(false), 1.0));
    }

    #[test]
    fn the_same_trace_gets_the_same_decision() {
        let id = crate::new_trace_id();
        let first = by_ratio(id, 0.5);
        assert!((0..100).all(|_| by_ratio(id, 0.5) == first));
    }
}
