//! The protobuf codec of every generated service and client: prost's, except that a message
//! that does not decode (a string field holding invalid UTF-8, a truncated field...) is
//! INVALID_ARGUMENT naming the field, not INTERNAL. Envoy's REST transcoder copies a path or
//! query parameter's bytes into a string field without checking them, so such a request is
//! the client's mistake, and must be told as one.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// prost's codec with decoding failures reported as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct AimeshCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for AimeshCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for AimeshCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = AimeshDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        AimeshDecoder(PhantomData)
    }
}

/// Decodes a message, a failure as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct AimeshDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for AimeshDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        U::decode(buf).map(Some).map_err(undecodable)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The status of a message that does not decode; prost's error names the field.
fn undecodable(error: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the message is not valid protobuf: {error}"))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use crate::notes::v1::GetNoteRequest;

    #[test]
    fn invalid_utf8_in_a_string_field_names_the_field() {
        // Field 1 (`id`), length-delimited, holding bytes that are not UTF-8.
        let bytes = [0x0a, 0x03, 0xff, 0xfe, 0x28];
        let status = super::undecodable(GetNoteRequest::decode(&bytes[..]).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("GetNoteRequest.id"),
            "{}",
            status.message()
        );
    }
}
