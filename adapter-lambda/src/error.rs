//! DynamoDB's failures in the core's vocabulary.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use oauth_core::StorageError;

/// Error codes that mean "overloaded, try again later". The SDK has already
/// retried them with backoff (standard retry mode) by the time they get
/// here, so the client is told to come back: 503 `temporarily_unavailable`.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Map an SDK failure. Messages name the operation and DynamoDB's error
/// code and message (never a key, a value or a credential).
pub(crate) fn classify<E>(operation: &str, error: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata,
{
    match &error {
        SdkError::TimeoutError(_) => StorageError::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => StorageError::Timeout,
        // Connection refused or reset, DNS: the endpoint is unreachable now.
        SdkError::DispatchFailure(failure) if failure.is_io() => StorageError::Unavailable,
        SdkError::DispatchFailure(_) => StorageError::Other(format!("{operation}: the request could not be sent")),
        SdkError::ResponseError(_) => StorageError::Unavailable,
        SdkError::ConstructionFailure(_) => {
            StorageError::Other(format!("{operation}: the request could not be built (check the configuration)"))
        }
        SdkError::ServiceError(service) => {
            let code = error.code().unwrap_or_default();
            if RETRYABLE_CODES.contains(&code) || service.raw().status().is_server_error() {
                return StorageError::Unavailable;
            }
            let message: String = error.message().unwrap_or_default().chars().take(200).collect();
            StorageError::Other(format!("{operation}: {code}: {message}"))
        }
        _ => StorageError::Other(format!("{operation}: unexpected SDK error")),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service(status: u16, code: &str) -> SdkError<GetItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("detail").build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(GetItemError::generic(meta), raw)
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for code in ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"] {
            assert_eq!(classify("GetItem", service(400, code)), StorageError::Unavailable, "{code}");
        }
        assert_eq!(classify("GetItem", service(500, "InternalServerError")), StorageError::Unavailable);
        assert_eq!(classify("GetItem", service(503, "Whatever")), StorageError::Unavailable);
    }

    #[test]
    fn client_errors_are_reported_with_their_code() {
        let e = classify("GetItem", service(400, "ValidationException"));
        assert_eq!(e, StorageError::Other("GetItem: ValidationException: detail".to_owned()));
        let e = classify("PutItem", service(400, "AccessDeniedException"));
        assert!(matches!(e, StorageError::Other(m) if m.starts_with("PutItem: AccessDeniedException")));
    }

    #[test]
    fn transport_failures() {
        let timeout: SdkError<GetItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify("GetItem", timeout), StorageError::Timeout);
        let io = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert_eq!(classify::<GetItemError>("GetItem", io), StorageError::Unavailable);
        let hung = SdkError::dispatch_failure(ConnectorError::timeout("hung".into()));
        assert_eq!(classify::<GetItemError>("GetItem", hung), StorageError::Timeout);
    }
}
