//! Where a read puts its records: batches for the engine, each id once per read (a record
//! that pages overlapping or shifting bring twice is sent once), and the typed `Stopped`
//! when the engine no longer reads (a send then fails at once, never blocks).

use std::collections::HashSet;
use tokio::sync::mpsc;

use super::{Batch, FileRef, Record, SourceError};

pub struct Sink {
    out: mpsc::Sender<Batch>,
    batch: Vec<Record>,
    size: usize,
    seen: HashSet<String>,
}

impl Sink {
    pub fn new(out: mpsc::Sender<Batch>, size: usize) -> Sink {
        Sink { out, batch: Vec::with_capacity(size), size: size.max(1), seen: HashSet::new() }
    }

    /// Whether this read already sent (or holds) the record.
    pub fn has(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Adds a record, unless this read already has one of its id (the first one wins).
    pub async fn push(&mut self, rec: Record) -> Result<(), SourceError> {
        if !self.seen.insert(rec.id.clone()) {
            return Ok(());
        }
        self.batch.push(rec);
        if self.batch.len() >= self.size {
            self.flush().await?;
        }
        Ok(())
    }

    /// A record made of a JSON value.
    pub async fn push_value(
        &mut self,
        id: String,
        v: &serde_json::Value,
        files: Vec<FileRef>,
        modified: Option<String>,
    ) -> Result<(), SourceError> {
        if self.has(&id) {
            return Ok(());
        }
        self.push(Record { id, json: v.to_string(), files, line: None, modified, unparsed: None }).await
    }

    pub async fn flush(&mut self) -> Result<(), SourceError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.size));
        self.out.send(batch).await.map_err(|_| SourceError::Stopped)
    }

    /// Sends what is left; the read is complete.
    pub async fn finish(mut self) -> Result<(), SourceError> {
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> Record {
        Record { id: id.into(), json: "{}".into(), files: Vec::new(), line: None, modified: None, unparsed: None }
    }

    #[tokio::test]
    async fn each_id_once_in_batches_and_stopped_when_the_engine_is_gone() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut sink = Sink::new(tx, 2);
        for id in ["a", "b", "a", "c"] {
            sink.push(rec(id)).await.unwrap();
        }
        sink.finish().await.unwrap();
        let ids: Vec<Vec<String>> =
            std::iter::from_fn(|| rx.try_recv().ok()).map(|b| b.into_iter().map(|r| r.id).collect()).collect();
        assert_eq!(ids, vec![vec!["a".to_string(), "b".into()], vec!["c".into()]]);

        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = Sink::new(tx, 1);
        assert!(matches!(sink.push(rec("a")).await, Err(SourceError::Stopped)));
    }
}
