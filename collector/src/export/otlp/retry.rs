//! The OTLP retry rules: one function per transport maps an endpoint's answer to what to do
//! next (retry, split, give up), and the backoff between attempts.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, after the server's requested delay if it gave one.
    Retry(Option<Duration>),
    /// The message was over the server's size limit: send it in smaller pieces.
    Split,
    /// Give up: retrying cannot help.
    GiveUp,
}

/// Whether a status says the message was over the server's size limit (grpc-go: "received
/// message larger than max", tonic: "decoded message length too large").
fn says_too_large(status: &tonic::Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    ["too large", "larger than", "exceeds"].iter().any(|phrase| message.contains(phrase))
}

/// The OTLP/gRPC retry rules: these codes are transient; RESOURCE_EXHAUSTED only when the
/// server says when to come back (RetryInfo), since otherwise it means "never". A size
/// refusal is neither: the batch is split.
pub fn verdict(status: &tonic::Status) -> Verdict {
    let retry_after = status.get_details_retry_info().and_then(|info| info.retry_delay);
    if retry_after.is_none()
        && matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument)
        && says_too_large(status)
    {
        return Verdict::Split;
    }
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Verdict::Retry(retry_after),
        Code::ResourceExhausted if retry_after.is_some() => Verdict::Retry(retry_after),
        _ => Verdict::GiveUp,
    }
}

/// Exponential backoff with jitter: attempt 0 waits about `first`, doubling to MAX_BACKOFF,
/// each delay drawn from [0.5, 1.5) of the nominal value.
pub fn backoff(first: Duration, attempt: u32, jitter: f64) -> Duration {
    let nominal = first.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(MAX_BACKOFF);
    nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// The OTLP/HTTP retry rules: 429, 502, 503 and 504 are transient (after Retry-After, in
/// seconds or as an HTTP date, when given); 413 means too large; anything else is final.
pub fn http_verdict(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        429 | 502 | 503 | 504 => Verdict::Retry(retry_after.and_then(parse_retry_after)),
        413 => Verdict::Split,
        _ => Verdict::GiveUp,
    }
}

fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn retries_follow_the_otlp_rules() {
        let retry_info = |code| {
            tonic::Status::with_error_details(
                code,
                "x",
                ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
            )
        };
        let cases = [
            (tonic::Status::new(Code::Unavailable, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::DeadlineExceeded, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::Cancelled, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::Aborted, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::OutOfRange, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::DataLoss, "x"), Verdict::Retry(None)),
            (retry_info(Code::Unavailable), Verdict::Retry(Some(Duration::from_secs(3)))),
            (tonic::Status::new(Code::ResourceExhausted, "x"), Verdict::GiveUp),
            (retry_info(Code::ResourceExhausted), Verdict::Retry(Some(Duration::from_secs(3)))),
            (tonic::Status::new(Code::InvalidArgument, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::FailedPrecondition, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Unauthenticated, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::PermissionDenied, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Unimplemented, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Internal, "x"), Verdict::GiveUp),
        ];
        for (status, expected) in cases {
            assert_eq!(verdict(&status), expected, "{:?}", status.code());
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let first = Duration::from_millis(500);
        assert_eq!(backoff(first, 0, 0.5), first);
        assert_eq!(backoff(first, 1, 0.5), first * 2);
        assert_eq!(backoff(first, 0, 0.0), first / 2);
        assert_eq!(backoff(first, 20, 0.5), MAX_BACKOFF);
        assert!(backoff(first, 20, 1.0) <= MAX_BACKOFF.mul_f64(1.5));
    }

    #[test]
    fn size_refusals_split_and_other_refusals_do_not() {
        let grpc_go =
            tonic::Status::new(Code::ResourceExhausted, "grpc: received message larger than max (9 vs. 4)");
        let tonic_server =
            tonic::Status::new(Code::OutOfRange, "Error, decoded message length too large: found 9 bytes");
        assert_eq!(verdict(&grpc_go), Verdict::Split);
        assert_eq!(verdict(&tonic_server), Verdict::Split);
        let quota = tonic::Status::new(Code::ResourceExhausted, "quota exceeded for project");
        assert_eq!(verdict(&quota), Verdict::GiveUp, "'exceeded' is not a size");
    }

    #[test]
    fn http_answers_follow_the_otlp_http_rules() {
        for status in [429, 502, 503, 504] {
            assert_eq!(http_verdict(status, None), Verdict::Retry(None), "{status}");
        }
        assert_eq!(http_verdict(503, Some("7")), Verdict::Retry(Some(Duration::from_secs(7))));
        assert_eq!(http_verdict(413, None), Verdict::Split);
        for status in [400, 401, 403, 404, 500] {
            assert_eq!(http_verdict(status, None), Verdict::GiveUp, "{status}");
        }
    }
}
