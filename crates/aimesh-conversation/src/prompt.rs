//! Building the chat model's prompts: the session's history as alternating turns, trimmed to
//! the context budget by tokens (oldest turns first, the system prompt and the new message
//! kept), and the texts a session's title and a refinement are made of.

use aimesh_ai::chat::ChatMessage;

use crate::domain::{Message, Role, Status};

/// Tokens a message's template markup costs beyond its text (`<|im_start|>role\n...<|im_end|>\n`).
pub const MESSAGE_OVERHEAD: usize = 5;

/// Longest generated title, in characters.
const TITLE_CHARS: usize = 60;
/// Most words of a generated title.
const TITLE_WORDS: usize = 8;

/// One exchange of the history: a user message and the reply it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// What the user wrote.
    pub user: String,
    /// What the assistant replied.
    pub assistant: String,
}

/// The complete exchanges of a history, oldest first: a user message followed by a finished
/// reply with text. Failed, cancelled and unanswered messages are left out, so the turns
/// alternate as chat templates require.
pub fn turns(history: &[Message]) -> Vec<Turn> {
    let mut turns = Vec::new();
    let mut pending: Option<&Message> = None;
    for message in history {
        match message.role {
            Role::User => pending = Some(message),
            Role::Assistant => {
                if let Some(user) = pending.take()
                    && message.status == Status::Done
                    && !message.content.trim().is_empty()
                    && message.reply_to.is_none_or(|id| id == user.id)
                {
                    turns.push(Turn {
                        user: user.content.clone(),
                        assistant: message.content.clone(),
                    });
                }
            }
        }
    }
    turns
}

/// The messages of a chat request: `system`, as many of the latest `turns` as fit in `budget`
/// tokens with the rest, and `user`. Tokens are counted by `count`. Returns `None` when the
/// system prompt and the new message alone do not fit.
pub fn fit(
    system: &str,
    turns: &[Turn],
    user: &str,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Option<Vec<ChatMessage>> {
    let fixed = count(system) + count(user) + 2 * MESSAGE_OVERHEAD;
    if fixed > budget {
        return None;
    }
    let mut left = budget - fixed;
    let mut kept = 0;
    for turn in turns.iter().rev() {
        let cost = count(&turn.user) + count(&turn.assistant) + 2 * MESSAGE_OVERHEAD;
        if cost > left {
            break;
        }
        left -= cost;
        kept += 1;
    }
    let mut messages = Vec::with_capacity(2 + 2 * kept);
    messages.push(ChatMessage::system(system));
    for turn in &turns[turns.len() - kept..] {
        messages.push(ChatMessage::user(turn.user.clone()));
        messages.push(ChatMessage::assistant(turn.assistant.clone()));
    }
    messages.push(ChatMessage::user(user));
    Some(messages)
}

/// A token count estimate for engines that cannot count: about four characters a token.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// A session title made from its first message: its first words, at most [`TITLE_WORDS`]
/// and [`TITLE_CHARS`] characters, with an ellipsis when cut.
pub fn title_from(message: &str) -> String {
    let words: Vec<&str> = message.split_whitespace().collect();
    let mut title = String::new();
    let mut cut = words.len() > TITLE_WORDS;
    for word in words.iter().take(TITLE_WORDS) {
        let extra = usize::from(!title.is_empty()) + word.chars().count();
        if title.chars().count() + extra > TITLE_CHARS {
            if title.is_empty() {
                title = word.chars().take(TITLE_CHARS).collect();
            }
            cut = true;
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    if title.is_empty() {
        return "New chat".to_owned();
    }
    if cut {
        title.push('…');
    }
    title
}

/// The first `max` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(user: &str, assistant: &str) -> Turn {
        Turn {
            user: user.into(),
            assistant: assistant.into(),
        }
    }

    #[test]
    fn the_oldest_turns_go_first_and_the_system_prompt_stays() {
        let count = |text: &str| text.split_whitespace().count();
        let turns = vec![
            turn("one two three", "four five six"),
            turn("seven", "eight"),
        ];
        // Everything: 1 + 1 + 2*5 fixed, 6 + 10 and 2 + 10 for the turns.
        let all = fit("sys", &turns, "hi", 100, &count).unwrap();
        assert_eq!(all.len(), 6);
        // Room for the fixed part and the newest turn only.
        let some = fit("sys", &turns, "hi", 12 + 12, &count).unwrap();
        assert_eq!(some.len(), 4);
        assert_eq!(some[0].content, "sys");
        assert_eq!(some[1].content, "seven");
        assert_eq!(some[3].content, "hi");
        // Not even the new message.
        assert!(fit("sys", &turns, "hi", 5, &count).is_none());
    }

    #[test]
    fn titles_are_the_first_words() {
        assert_eq!(title_from("  Hello   there "), "Hello there");
        assert_eq!(
            title_from("one two three four five six seven eight nine"),
            "one two three four five six seven eight…"
        );
        assert_eq!(title_from("   "), "New chat");
        assert_eq!(title_from(&"x".repeat(100)).chars().count(), 61);
    }
}
