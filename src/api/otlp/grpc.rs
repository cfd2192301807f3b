//! OTLP/gRPC: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`, served by tonic
//! (HTTP/2, gRPC framing, gzip) with the published message types.
//!
//! Why not the crate's generated `MetricsServiceServer`: it decodes the request with tonic's
//! prost codec, which answers a malformed message with INTERNAL, a code that tells the exporter
//! the fault is ours. Here the codec hands over the raw message and the receiver decodes it
//! like an OTLP/HTTP body, so bad protobuf is INVALID_ARGUMENT (not retried), and decoding
//! happens on the blocking pool under the same concurrency bound. The routing below is what the
//! generated server does, for one method.
//!
//! Retryable refusals carry a `RetryInfo` with the delay twice: in the standard
//! `grpc-status-details-bin` and in the `google.rpc.retryinfo-bin` trailer the Python exporter
//! reads.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Class, Encoded, OtlpError, OtlpReceiver};
use crate::access::{Access, Caller, Denial, Scope};
use crate::foreign::otlp::ExportMetricsServiceResponse;

/// The gRPC service name of OTLP metrics.
pub const SERVICE: &str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// The gRPC code of each class of failure.
pub fn code(class: Class) -> Code {
    match class {
        Class::Invalid | Class::Unsupported => Code::InvalidArgument,
        // Without RetryInfo, OTLP says RESOURCE_EXHAUSTED is not to be retried.
        Class::TooLarge | Class::Busy => Code::ResourceExhausted,
        Class::Unavailable => Code::Unavailable,
        Class::Internal => Code::Internal,
        Class::Forbidden => Code::PermissionDenied,
    }
}

/// The tonic service; add it to a `tonic::transport::Server`.
#[derive(Clone)]
pub struct MetricsService {
    receiver: OtlpReceiver,
    access: Access,
}

impl MetricsService {
    /// A service feeding `receiver`, for callers `access` lets write (the token in the
    /// `authorization` metadata, as `Bearer <token>`).
    pub fn new(receiver: OtlpReceiver, access: Access) -> Self {
        Self { receiver, access }
    }

    /// The caller of `request`, or the status refusing it.
    fn caller<B>(&self, request: &http::Request<B>) -> Result<Caller, Status> {
        let caller = self.access.authenticate(request.headers(), false);
        let denial = match caller {
            Ok(caller) if caller.may(Scope::Write) => return Ok(caller),
            Ok(caller) => Denial::MissingScope {
                token: caller.name().to_owned(),
                has: caller.scopes().to_string(),
                needs: Scope::Write,
                what: "OTLP/gRPC Export".into(),
            },
            Err(denial) => denial,
        };
        self.access.count(&denial);
        tracing::debug!(
            reason = denial.reason(),
            "OTLP/gRPC call refused by access control"
        );
        let code = match denial.is_unauthenticated() {
            true => Code::Unauthenticated,
            false => Code::PermissionDenied,
        };
        self.receiver.count_request("grpc", code_label(code));
        Err(Status::new(code, denial.message()))
    }
}

impl NamedService for MetricsService {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for MetricsService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("only Export").into_http()) });
        }
        let caller = match self.caller(&request) {
            Ok(caller) => caller,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        let export = Export(self.receiver.clone(), caller);
        let limit = self.receiver.max_body_bytes();
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

struct Export(OtlpReceiver, Caller);

impl UnaryService<Bytes> for Export {
    type Response = ExportMetricsServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = self.0.clone();
        let gate = self.1.gate();
        Box::pin(async move {
            let peer = request
                .remote_addr()
                .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |a| a.ip());
            let outcome = async {
                let slot = receiver.admit().await?;
                receiver
                    .export(
                        slot,
                        Encoded::Protobuf(request.into_inner()),
                        false,
                        peer,
                        gate,
                    )
                    .await
            }
            .await;
            let label = match &outcome {
                Ok(_) => "ok",
                Err(e) => code_label(code(e.class())),
            };
            receiver.count_request("grpc", label);
            outcome.map(Response::new).map_err(|e| status(&e))
        })
    }
}

/// The gRPC status of a failure, with the retry delay when it is retryable.
fn status(error: &OtlpError) -> Status {
    let code = code(error.class());
    if code == Code::Internal {
        tracing::error!(%error, "OTLP/gRPC export failed");
    }
    let Some(after) = error.retry_after() else {
        return Status::new(code, error.message());
    };
    let retry = tonic_types::pb::RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(after.subsec_nanos()).unwrap_or(0),
        }),
    };
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(
        "google.rpc.retryinfo-bin",
        MetadataValue::from_bytes(&retry.encode_to_vec()),
    );
    Status::with_error_details_and_metadata(
        code,
        error.message(),
        ErrorDetails::with_retry_info(Some(after)),
        metadata,
    )
}

fn code_label(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "invalid_argument",
        Code::ResourceExhausted => "resource_exhausted",
        Code::Unavailable => "unavailable",
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission_denied",
        _ => "other",
    }
}

/// Decodes a request message to its raw bytes (the receiver decodes them); encodes responses
/// with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportMetricsServiceResponse;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = ExportMetricsServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
