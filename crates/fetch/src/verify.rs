//! Gzip verification of a download while it streams: every member's CRC32 and length is checked on a blocking
//! thread, so a corrupt file is never published.

use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Body chunks queued for the gzip verifier; HTTP chunks are at most a few tens of KiB, so this is at most ~1 MiB.
const VERIFY_QUEUE_CHUNKS: usize = 32;

/// Decodes a gzip stream on a blocking thread as it is downloaded, to check every member's CRC32 and length.
pub(crate) struct GzipVerifier {
    sender: Option<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<io::Result<u64>>,
}

impl GzipVerifier {
    /// Starts the decoder thread.
    pub(crate) fn spawn() -> Self {
        let (sender, receiver) = mpsc::channel(VERIFY_QUEUE_CHUNKS);
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                receiver,
                current: Bytes::new(),
                received: 0,
            };
            let mut decoder = flate2::read::MultiGzDecoder::new(&mut reader);
            let decoded = io::copy(&mut decoder, &mut io::sink())?;
            drop(decoder);
            // The decoder reads to the end of the stream (looking for further members), so on success every queued
            // chunk has been consumed and the sender never blocks on a finished decoder.
            if reader.received == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is empty",
                ));
            }
            Ok(decoded)
        });
        Self {
            sender: Some(sender),
            task,
        }
    }

    /// Queues `chunk`; `false` when the decoder has already stopped (corrupt data).
    pub(crate) async fn feed(&mut self, chunk: Bytes) -> bool {
        match &self.sender {
            Some(sender) => sender.send(chunk).await.is_ok(),
            None => false,
        }
    }

    /// Ends the stream and returns the decoded length, or the decoder's error.
    pub(crate) async fn finish(mut self) -> io::Result<u64> {
        drop(self.sender.take());
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(io::Error::other(join)),
        }
    }
}

/// A blocking `Read` over chunks received from an async producer.
struct ChannelReader {
    receiver: mpsc::Receiver<Bytes>,
    current: Bytes,
    received: u64,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.received += chunk.len() as u64;
                    self.current = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(members: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for member in members {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(member).expect("compress");
            out.extend(enc.finish().expect("compress"));
        }
        out
    }

    async fn verify(data: Vec<u8>, chunk: usize) -> io::Result<u64> {
        let mut verifier = GzipVerifier::spawn();
        for piece in data.chunks(chunk.max(1)) {
            if !verifier.feed(Bytes::copy_from_slice(piece)).await {
                break;
            }
        }
        verifier.finish().await
    }

    #[tokio::test]
    async fn gzip_verifier_accepts_multi_member_and_rejects_damage() {
        let payload = b"{\"id\":\"1\"}\n".repeat(2000);
        let good = gzip(&[&payload, b"second member\n"]);
        assert_eq!(
            verify(good.clone(), 333).await.expect("valid"),
            payload.len() as u64 + 14
        );

        let truncated = good[..good.len() - 5].to_vec();
        assert!(verify(truncated, 100).await.is_err());

        let mut bad_crc = gzip(&[&payload]);
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        assert!(verify(bad_crc, 1000).await.is_err());

        assert!(verify(Vec::new(), 10).await.is_err());
        assert!(verify(b"not gzip at all".repeat(100), 64).await.is_err());
    }
}
