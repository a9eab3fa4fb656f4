//! The sync protocol's codec: one CBOR message each way per stream, capped at
//! [`MAX_MESSAGE_BYTES`].
//!
//! libp2p's stock CBOR codec fails the stream on a message it cannot read, and
//! request-response reports such a failure nowhere (a debug line at most), so a
//! peer could send garbage without end and never be noticed. This codec reads
//! the bytes and hands up what it could not decode as [`Frame::Broken`], so the
//! node answers it, logs the peer and disconnects it like any other protocol
//! violation. Only a failure of the stream itself (a reset, a dropped
//! connection) is an I/O error.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::protocol::{MAX_MESSAGE_BYTES, PieceRequest, PieceResponse, SyncRequest, SyncResponse};

/// One message as read off the wire.
#[derive(Debug)]
pub enum Frame<M> {
    Message(M),
    /// Bytes that are not a message of the protocol: over the cap, truncated,
    /// not CBOR, or CBOR of another shape. Says which, for the log.
    Broken(String),
    /// A message this node had no memory left to hold ([`READ_BUDGET`]): read
    /// and dropped, answered "busy". Breaks nothing; the peer tries again.
    Busy,
}

/// Bytes of messages being read, on every stream of every connection
/// together: past it, a message is read to its end and dropped (its peer is
/// answered "busy"), so however many peers, connections and streams send at
/// once, what they send costs at most this much to hold.
pub const READ_BUDGET: usize = 48 << 20;

static READING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Bytes counted in [`READING`] while a message is read; given back on drop.
struct Held(usize);

impl Held {
    /// Counts `n` more bytes, unless that would pass the budget.
    fn take(&mut self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        let before = READING.fetch_add(n, Ordering::AcqRel);
        if before + n > READ_BUDGET {
            READING.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.0 += n;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        READING.fetch_sub(self.0, std::sync::atomic::Ordering::AcqRel);
    }
}

/// One CBOR request and one CBOR response per stream, of types `Req` and
/// `Resp`: the sync protocol's codec and the evidence pieces' one.
pub struct CborCodec<Req, Resp>(std::marker::PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        CborCodec(std::marker::PhantomData)
    }
}

impl<Req, Resp> Default for CborCodec<Req, Resp> {
    fn default() -> Self {
        CborCodec(std::marker::PhantomData)
    }
}

pub type SyncCodec = CborCodec<SyncRequest, SyncResponse>;
pub type PieceCodec = CborCodec<PieceRequest, PieceResponse>;

/// How much one read of a stream takes at most.
const READ_CHUNK: usize = 64 * 1024;

/// Reads one message: everything the peer writes before closing its side,
/// at most one byte past the cap (so an oversized message costs at most the
/// cap in memory), then decodes it.
async fn read_frame<M, T>(io: &mut T) -> io::Result<Frame<M>>
where
    M: DeserializeOwned,
    T: AsyncRead + Unpin + Send,
{
    // Chunked reads appended with a copy: `read_to_end` zero-fills the spare
    // capacity at every growth, which a peer streaming without end turned into
    // most of the node's CPU.
    let limit = MAX_MESSAGE_BYTES as usize + 1;
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut held = Held(0);
    let (mut busy, mut read) = (false, 0usize);
    while read < limit {
        let want = chunk.len().min(limit - read);
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            break;
        }
        // A message's first chunk is never counted: small requests (a
        // digest, a pull) always get through, so a peer that keeps the
        // budget full cannot deny the node to others (what that frees is
        // bounded by the connection and stream limits).
        let counted = (read + n).saturating_sub(READ_CHUNK) - read.saturating_sub(READ_CHUNK);
        read += n;
        // Over the budget: the rest is read and dropped, so the peer's
        // write completes and it gets a clear answer.
        if busy || !held.take(counted) {
            busy = true;
            bytes = Vec::new();
            continue;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    // Past the cap is a violation whether or not it was held.
    if busy && read as u64 > MAX_MESSAGE_BYTES {
        return Ok(Frame::Broken(format!(
            "a message over the {} MiB limit",
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    if busy {
        return Ok(Frame::Busy);
    }
    if bytes.is_empty() {
        // The peer closed the stream without a word: it chose not to answer
        // (it may be shutting down), which breaks nothing.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the stream closed without a message",
        ));
    }
    Ok(decode_frame(&bytes))
}

/// Decodes one message's bytes; pure, so it is tested without a network.
pub fn decode_frame<M: DeserializeOwned>(bytes: &[u8]) -> Frame<M> {
    if bytes.len() as u64 > MAX_MESSAGE_BYTES {
        return Frame::Broken(format!(
            "a message over the {} MiB limit",
            MAX_MESSAGE_BYTES >> 20
        ));
    }
    match cbor4ii::serde::from_slice(bytes) {
        Ok(m) => Frame::Message(m),
        Err(e) => Frame::Broken(format!(
            "{} bytes that are not a message of the sync protocol (truncated or malformed: {e})",
            bytes.len()
        )),
    }
}

async fn write_frame<M, T>(io: &mut T, frame: Frame<M>) -> io::Result<()>
where
    M: Serialize,
    T: AsyncWrite + Unpin + Send,
{
    let Frame::Message(m) = frame else {
        return Err(io::Error::other("a broken or busy frame is never sent"));
    };
    let bytes = cbor4ii::serde::to_vec(Vec::new(), &m).map_err(io::Error::other)?;
    if bytes.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(io::Error::other(format!(
            "a message of {} bytes is over the {} MiB limit",
            bytes.len(),
            MAX_MESSAGE_BYTES >> 20
        )));
    }
    // request-response closes the stream after this.
    io.write_all(&bytes).await
}

impl<Req, Resp> request_response::Codec for CborCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Frame<Req>;
    type Response = Frame<Resp>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Self::Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(r: &SyncRequest) -> Vec<u8> {
        cbor4ii::serde::to_vec(Vec::new(), r).unwrap()
    }

    #[test]
    fn a_message_decodes_and_everything_else_is_named_broken() {
        let digest = SyncRequest::Digest {
            federation: vec![1; 32],
            digest: vec![2; 32],
            audit_head: vec![],
        };
        let bytes = encode(&digest);
        assert!(matches!(
            decode_frame::<SyncRequest>(&bytes),
            Frame::Message(SyncRequest::Digest { .. })
        ));
        let broken = |b: &[u8]| match decode_frame::<SyncRequest>(b) {
            Frame::Broken(why) => why,
            other => panic!("decoded {other:?}"),
        };
        assert!(broken(&bytes[..bytes.len() / 2]).contains("truncated or malformed"));
        assert!(broken(b"{\"not\": \"cbor\"}").contains("not a message"));
        assert!(broken(&[]).contains("0 bytes"));
        // CBOR, but not of the protocol's shape.
        let other = cbor4ii::serde::to_vec(Vec::new(), &vec![1u32, 2, 3]).unwrap();
        assert!(broken(&other).contains("not a message"));
        // A length prefix claiming more than is there allocates nothing.
        let mut huge = vec![0x9b];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(broken(&huge).contains("not a message"));
        let over = vec![0u8; MAX_MESSAGE_BYTES as usize + 1];
        assert!(broken(&over).contains("over the 16 MiB limit"));
    }
}
