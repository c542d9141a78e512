//! The model's chat template (the Jinja template in the GGUF metadata key
//! `tokenizer.chat_template`), rendered with minijinja the way Hugging Face renders it:
//! `messages` as a list of `{role, content}`, `add_generation_prompt`, `bos_token` and
//! `eos_token`, blocks trimmed, and a `raise_exception` function.

use minijinja::{Environment, Error, ErrorKind, Value, context};

use super::ChatMessage;

const NAME: &str = "chat";

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts of those tokens.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(NAME, source.into())?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// Renders `messages` followed by the prompt of the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, Error> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|message| context! { role => message.role.as_str(), content => message.content })
            .collect();
        self.env.get_template(NAME)?.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chatml_with_the_generation_prompt() {
        let template = ChatTemplate::new(
            "{% for message in messages %}\n\
             {{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\
             {% endfor %}\n\
             {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
            "<s>",
            "</s>",
        )
        .expect("compiles");
        let text = template
            .render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")])
            .expect("renders");
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn errors_are_reported() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
        let raising =
            ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").expect("compiles");
        let error = raising
            .render(&[ChatMessage::user("Hi")])
            .expect_err("raises");
        assert!(error.to_string().contains("no system role"), "{error}");
    }
}
