//! Step 1 of stage 2's pipeline (see [`super::stage`]): reading the batch's landing files. A file's bytes
//! ([`open_reader`]), what its decoder is told about it ([`decode_input`]), and the decoders themselves, started
//! in file order ([`spawn_decoders`]), each sending [`FileMsg`]s on a channel of its own.

use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::{GetOptions, GetRange};
use tokio::sync::mpsc;

use crate::decode::{DecodeEnd, DecodeError, DecodeInput, DecodeItem, Decoder};
use crate::modes::context::Context;
use crate::source::fingerprint::ConsumedHasher;
use crate::source::LandingFile;
use crate::store::StoreLocation;

/// Decoded items of one file that may wait for the consumer: bounds memory per file in flight.
const FILE_CHANNEL_CAPACITY: usize = 4;

pub(super) enum FileMsg {
    Item(DecodeItem),
    /// The decoder's end, and the hash of the prefix it consumed.
    End(Result<DecodeEnd, DecodeError>, Option<String>),
}

/// Step 1 of [`super::stage`], the spawner: `files` in; for each, in file order as decode slots free up, a channel of
/// [`FileMsg`]s out on `order_tx`, fed by a decoder on a blocking thread (FIFO, so the file the consumer waits
/// for always has a slot and nothing deadlocks).
pub(super) fn spawn_decoders(
    ctx: &Context,
    files: &[LandingFile],
    decoder: &Decoder,
    ingested_at: i64,
    order_tx: mpsc::Sender<(usize, mpsc::Receiver<FileMsg>)>,
) -> tokio::task::JoinHandle<()> {
    let files = files.to_vec();
    let slots = ctx.decode_slots.clone();
    let landing = ctx.landing.clone();
    let decoder = decoder.clone();
    tokio::spawn(async move {
        for (i, f) in files.into_iter().enumerate() {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tx, rx) = mpsc::channel::<FileMsg>(FILE_CHANNEL_CAPACITY);
            if order_tx.send((i, rx)).await.is_err() {
                return;
            }
            let input = decode_input(&f, ingested_at);
            // The hash of the consumed prefix, continued from the listing's hash of the bytes before the
            // first one read (a gzip file is read, and hashed, whole).
            let start_hash = if f.gzip {
                crate::source::fingerprint::PrefixHash::new()
            } else {
                f.prefix.clone()
            };
            let hasher = (start_hash.len() == input.start_offset)
                .then(|| Arc::new(Mutex::new(ConsumedHasher::new(start_hash))));
            match open_reader(&landing, &f, input.start_offset, hasher.clone()).await {
                Err(e) => {
                    let _ = tx.send(FileMsg::End(Err(e), None)).await;
                }
                Ok(reader) => {
                    let decoder = decoder.clone();
                    tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        let r = decoder.decode(reader, &input, &mut |item| {
                            tx.blocking_send(FileMsg::Item(item)).is_ok()
                        });
                        let end = |e: &DecodeEnd| if f.gzip { f.size } else { e.end_offset };
                        let hash = match (&r, &hasher) {
                            (Ok(e), Some(h)) => {
                                h.lock().ok().and_then(|h| h.at(end(e))).map(|h| h.hex())
                            }
                            _ => None,
                        };
                        let _ = tx.blocking_send(FileMsg::End(r, hash));
                    });
                }
            }
        }
    })
}

/// Opens a blocking reader over `[start_offset, size)` of a landing file; every byte read is also fed to
/// `hasher`, if any.
pub(super) async fn open_reader(
    landing: &StoreLocation,
    f: &LandingFile,
    start: u64,
    hasher: Option<Arc<Mutex<ConsumedHasher>>>,
) -> Result<Box<dyn std::io::Read + Send>, DecodeError> {
    if start >= f.size {
        return Ok(Box::new(std::io::empty()));
    }
    let opts = GetOptions {
        range: Some(GetRange::Bounded(start..f.size)),
        ..Default::default()
    };
    let got = landing
        .store
        .get_opts(&f.location, opts)
        .await
        .map_err(|e| DecodeError::Read {
            path: f.path.clone(),
            source: std::io::Error::new(
                match e {
                    object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
                    _ => std::io::ErrorKind::Other,
                },
                e.to_string(),
            ),
        })?;
    let read = crate::metrics::get()
        .read_bytes
        .get_or_create(&crate::metrics::ds(&f.dataset))
        .clone();
    let stream = got
        .into_stream()
        .inspect_ok(move |b| {
            read.inc_by(b.len() as u64);
            if let Some(h) = &hasher {
                if let Ok(mut h) = h.lock() {
                    h.feed(b);
                }
            }
        })
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
}

pub(super) fn decode_input(f: &LandingFile, ingested_at: i64) -> DecodeInput {
    DecodeInput {
        path: f.path.clone(),
        start_offset: if f.gzip { 0 } else { f.start_offset },
        start_line: if f.gzip { 0 } else { f.start_line },
        gzip: f.gzip,
        is_final: f.is_final,
        ingested_at,
        file_bytes: f.pending_bytes(),
        limits: f.limits,
        continues_line: f.continues_line && !f.gzip,
    }
}
