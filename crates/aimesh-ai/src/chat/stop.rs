//! Streaming text through stop sequences: text that could be the start of a stop sequence is
//! held back until the next tokens tell whether it is one, so a stop sequence is never emitted.

/// What one piece of text produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Text safe to emit (possibly empty); generation goes on.
    Emit(String),
    /// A stop sequence was found: the text before it, to emit before stopping.
    Stopped(String),
}

/// Finds stop sequences in streamed text.
#[derive(Debug)]
pub(crate) struct StopScanner {
    stops: Vec<String>,
    held: String,
}

impl StopScanner {
    /// A scanner for `stops` (none: every piece is emitted as is).
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            held: String::new(),
        }
    }

    /// Takes the next piece of text.
    pub(crate) fn push(&mut self, text: &str) -> Scan {
        if self.stops.is_empty() {
            return Scan::Emit(text.to_owned());
        }
        self.held.push_str(text);
        let first = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first {
            self.held.truncate(at);
            return Scan::Stopped(std::mem::take(&mut self.held));
        }
        // Keep the longest tail that some stop sequence starts with.
        let keep_from = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|stop| stop.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let rest = self.held.split_off(keep_from);
        Scan::Emit(std::mem::replace(&mut self.held, rest))
    }

    /// The text still held back, once generation ended without a stop sequence.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_sequence_split_across_pieces_is_not_emitted() {
        let mut scanner = StopScanner::new(vec!["\n\nUser:".into()]);
        assert_eq!(scanner.push("Hello"), Scan::Emit("Hello".into()));
        assert_eq!(scanner.push(" there\n"), Scan::Emit(" there".into()));
        assert_eq!(scanner.push("\nUs"), Scan::Emit(String::new()));
        assert_eq!(scanner.push("er: hi"), Scan::Stopped(String::new()));
    }

    #[test]
    fn a_false_start_is_released() {
        let mut scanner = StopScanner::new(vec!["END".into(), "été".into()]);
        assert_eq!(scanner.push("The EN"), Scan::Emit("The ".into()));
        assert_eq!(scanner.push("D"), Scan::Stopped(String::new()));
        let mut scanner = StopScanner::new(vec!["END".into(), "été".into()]);
        assert_eq!(scanner.push("ENd é"), Scan::Emit("ENd ".into()));
        assert_eq!(scanner.finish(), "é");
        assert_eq!(scanner.push("x"), Scan::Emit("x".into()));
    }

    #[test]
    fn without_stop_sequences_everything_passes() {
        let mut scanner = StopScanner::new(Vec::new());
        assert_eq!(scanner.push("a\n\n"), Scan::Emit("a\n\n".into()));
        assert_eq!(scanner.finish(), "");
    }
}
