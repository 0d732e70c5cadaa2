//! Watching landing (work in progress).
